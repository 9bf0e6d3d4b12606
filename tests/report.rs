//! `rollout-guard report` end to end: a records file written by the real `run` loop (the fake
//! API server, or a real cluster with `ROLLOUT_GUARD_TEST_KUBECONFIG`, and a simulated PHP
//! service whose release throws `Class not found`), turned into reports by the binary, and the
//! HTML one looked at as a person would, in headless Chromium: a screenshot must show the plot
//! drawn, and the same check must see that it is missing from a report rendered without plots.
//!
//! Chromium is Debian's `chromium` package (`CHROMIUM` names another binary); `scripts/test`
//! installs it. Without it the Chromium test fails, never skips.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rollout_guard::analysis::judge::Evidence;
use rollout_guard::policy::guard::Act;
use rollout_guard::records::{self, Kind, Record};
use support::cluster::{Cluster, ann, guarded, memory};

/// The records of a class-loading regression that the real controller rolled back, the
/// rollback verified; made once for all the tests of this file (each in its own folder).
fn rolled_back_records() -> &'static Path {
    static RECORDS: OnceLock<PathBuf> = OnceLock::new();
    RECORDS.get_or_init(|| {
        // Its own runtime on its own thread: the tests calling this are synchronous.
        std::thread::spawn(|| {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let c = Cluster::start("report", Duration::from_millis(1500)).await;
                c.deploy("shop", 4, &ann(&guarded("guard"))).await;
                let daemon = c.daemon(c.config()).await;
                c.release("shop", "v2", Some("class-errors")).await;
                c.wait_rolled_back("shop").await;
                c.wait(
                    "shop",
                    "the rollback verified",
                    Duration::from_secs(90),
                    |d| {
                        memory(d).is_some_and(|m| {
                            matches!(
                                m.current.map(|c| c.stage),
                                Some(rollout_guard::policy::guard::Stage::RolledBack {
                                    verified: Some(true),
                                    ..
                                })
                            )
                        })
                    },
                )
                .await;
                daemon.stop().await;
                let dir = tempfile::tempdir().unwrap().keep();
                let path = dir.join("records.jsonl");
                std::fs::copy(c.records_path(), &path).unwrap();
                path
            })
        })
        .join()
        .expect("the controller run that writes the records")
    })
}

/// A copy of the records in a folder of the test's own.
fn records_copy() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("records.jsonl");
    std::fs::copy(rolled_back_records(), &path).unwrap();
    (dir, path)
}

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rollout-guard"))
        .args(args)
        .output()
        .expect("the binary runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn report(args: &[&str]) -> String {
    let out = run(&[&["report"], args].concat());
    assert!(
        out.status.success(),
        "report {args:?}: {}",
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// What the records say happened: the rolled-back revision and its ReplicaSet, the revision
/// it went back to, and the deciding evaluation.
struct Truth {
    namespace: String,
    revision: u64,
    new_replicaset: String,
    to_revision: u64,
    deciding: Record,
}

fn truth(path: &Path) -> Truth {
    let (recs, skipped) = records::read(path).unwrap();
    assert_eq!(skipped, 0);
    let action = recs
        .iter()
        .find(|r| {
            r.kind == Kind::Action
                && r.result.as_ref().is_some_and(|w| w.is_ok())
                && r.acts.iter().any(|a| a.name() == "rollback")
        })
        .expect("a rollback written");
    let to_revision = action
        .acts
        .iter()
        .find_map(|a| match a {
            Act::Rollback { to_revision, .. } => Some(*to_revision),
            _ => None,
        })
        .unwrap();
    let deciding = recs
        .iter()
        .find(|r| r.kind == Kind::Evaluation && r.at == action.at && !r.acts.is_empty())
        .expect("the deciding evaluation");
    // Decided again after a write conflict: the numbers are those of the evaluation it names.
    let deciding = deciding.verdicts_source(&recs).clone();
    Truth {
        namespace: action.namespace.clone(),
        revision: action.revision.unwrap(),
        new_replicaset: action.new_replicaset.clone().unwrap(),
        to_revision,
        deciding,
    }
}

#[test]
fn the_report_of_a_real_rollback_names_the_rule_and_the_revisions() {
    let (dir, path) = records_copy();
    let t = truth(&path);
    assert_eq!((t.revision, t.to_revision), (2, 1));
    let p = path.to_str().unwrap();

    let md = report(&["--records", p]);
    let summary = md.lines().nth(2).unwrap();
    let want = format!(
        "Revision {} ({}) of {}/shop was rolled back to revision {} (",
        t.revision, t.new_replicaset, t.namespace, t.to_revision
    );
    // In words first: the simulated releases change an environment variable, not the image,
    // and the records say so.
    let lead = format!(
        "The release of {}/shop that kept every container's image (another change to the pod template",
        t.namespace
    );
    assert!(summary.starts_with(&lead), "{summary}");
    assert!(summary.contains(&want), "{summary}");
    assert!(
        summary.contains("by class-loading-errors on its first failing evaluation: new "),
        "{summary}"
    );
    assert!(summary.contains("the rollback was confirmed"), "{summary}");
    // The deciding evaluation's numbers, as recorded.
    let class = t
        .deciding
        .verdicts
        .iter()
        .find(|v| v.rule == "class-loading-errors")
        .unwrap();
    let Some(Evidence::ErrorRate(e)) = &class.evidence else {
        panic!("{class:?}")
    };
    let errors_row = format!(
        "| errors | {} | {} |",
        rollout_guard::report::num(e.new.errors),
        rollout_guard::report::num(e.old.errors)
    );
    assert!(md.contains(&errors_row), "{errors_row} missing:\n{md}");
    assert!(md.contains(&format!("p={}", rollout_guard::report::pval(e.p_value))));
    for part in [
        "## Rules that failed",
        "### class-loading-errors (decided)",
        "**Queries as sent**",
        "```promql\nsum by (pod) (( last_over_time(php_errors_total{namespace=",
        "## Timeline",
        "| action |",
        "RollbackComplete: ",
    ] {
        assert!(md.contains(part), "{part} missing:\n{md}");
    }

    // HTML to a file: the format follows the extension; the same summary.
    let html_path = dir.path().join("report.html");
    assert_eq!(
        report(&["--records", p, "--output", html_path.to_str().unwrap()]),
        ""
    );
    let html = std::fs::read_to_string(&html_path).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(
        html.contains(&format!(
            "<p class=\"summary\" id=\"summary\">The release of {}/shop that kept every container",
            t.namespace
        )),
        "{html}"
    );
    assert!(html.contains(&want), "{html}");
    assert!(html.contains(r#"<svg class="plot" data-rule="class-loading-errors""#));
    // The same selection, spelled out, gives the same report.
    let explicit = report(&[
        "--records",
        p,
        "--deployment",
        "shop",
        "--namespace",
        &t.namespace,
        "--revision",
        &t.revision.to_string(),
        "--format",
        "markdown",
    ]);
    assert_eq!(explicit, md);
    // And with the short flags `status`, `check` and `backtest` take too.
    let short = report(&[
        "--records",
        p,
        "-d",
        "shop",
        "-n",
        &t.namespace,
        "--revision",
        &t.revision.to_string(),
    ]);
    assert_eq!(short, md);
}

#[test]
fn report_errors_are_clear_and_exit_2() {
    let (dir, path) = records_copy();
    let p = path.to_str().unwrap();
    let t = truth(&path);
    let fails = |args: &[&str], want: &str| {
        let out = run(&[&["report"], args].concat());
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = text(&out.stderr);
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(out.stdout.is_empty());
        err
    };
    fails(
        &["--records", "/no/such/records.jsonl"],
        "rollout-guard: cannot read the records file /no/such/records.jsonl: No such file",
    );
    let listed = format!("{}/shop: revision 2 (", t.namespace);
    let err = fails(
        &["--records", p, "--deployment", "cart"],
        "no records of Deployment cart; the file holds:\n",
    );
    assert!(err.contains(&listed), "{err}");
    let err = fails(
        &["--records", p, "--revision", "9"],
        &format!(
            "no records of revision 9 of {}/shop; the file holds:\n",
            t.namespace
        ),
    );
    assert!(
        err.contains("revision 2 (") && err.contains(", rollback, "),
        "{err}"
    );

    let empty = dir.path().join("empty.jsonl");
    std::fs::write(&empty, "\n").unwrap();
    fails(&["--records", empty.to_str().unwrap()], "is empty");
    let junk = dir.path().join("junk.jsonl");
    std::fs::write(&junk, "GET / 200\nGET /x 404\n{\"schema\": 99}\n").unwrap();
    fails(
        &["--records", junk.to_str().unwrap()],
        "does not look like a decision-record file (schema 1): 3 of its 3 lines are not records",
    );

    // A few unreadable lines (a write cut short) are skipped and counted.
    let mut text_now = std::fs::read_to_string(&path).unwrap();
    text_now.push_str("{\"schema\":1,\"kind\":\"evalu\n");
    std::fs::write(&path, text_now.as_bytes()).unwrap();
    let lines = text_now.lines().count();
    let md = report(&["--records", p]);
    assert!(
        md.contains(&format!(
            "- Skipped 1 line of records.jsonl that could not be read as decision records of this version (line {lines})."
        )),
        "{md}"
    );
}

#[test]
fn report_help_describes_every_flag() {
    let out = run(&["report", "--help"]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    for flag in [
        "--records <RECORDS>",
        "--deployment <DEPLOYMENT>",
        "--namespace <NAMESPACE>",
        "--revision <REVISION>",
        "--format <FORMAT>",
        "--output <OUTPUT>",
        "--no-plots",
        "latest revision that had an action",
        "Exits 2 when",
    ] {
        assert!(help.contains(flag), "{flag} missing:\n{help}");
    }
    let top = text(&run(&["--help"]).stdout);
    assert!(top.contains("report"), "{top}");
}

// ----- looking at the HTML in Chromium -----

/// The Chromium binary: `CHROMIUM`, else Debian's `chromium` on the PATH. Missing, the test
/// fails with what to install.
fn chromium() -> PathBuf {
    if let Some(p) = std::env::var_os("CHROMIUM") {
        return PathBuf::from(p);
    }
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join("chromium"))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "headless Chromium is needed to look at the HTML report and was not found{}: scripts/test installs Debian's package (apt-get install chromium), or set CHROMIUM to a Chromium binary",
            if std::env::var_os("CI").is_some() {
                " in CI"
            } else {
                ""
            }
        )
    })
}

/// Runs headless Chromium on `page` with `args`; fails the test if it does not finish in time.
fn headless(page: &Path, args: &[&str]) -> Output {
    let profile = tempfile::tempdir().unwrap();
    let mut child = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--no-default-browser-check",
            "--hide-scrollbars",
            "--force-device-scale-factor=1",
            "--window-size=1200,2000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting chromium");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!("chromium did not finish in 120 s: {}", text(&out.stderr));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A screenshot of `page`, 1200×2000, as RGB rows.
struct Screenshot {
    width: usize,
    height: usize,
    rgb: Vec<[u8; 3]>,
}

fn screenshot(page: &Path) -> Screenshot {
    let png_path = page.with_extension("png");
    let out = headless(page, &[&format!("--screenshot={}", png_path.display())]);
    assert!(
        out.status.success() && png_path.is_file(),
        "chromium --screenshot failed: {}",
        text(&out.stderr)
    );
    let mut decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(&png_path).unwrap(),
    ));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    assert!(channels >= 3, "a colour screenshot: {:?}", info.color_type);
    let (width, height) = (info.width as usize, info.height as usize);
    let rgb = (0..width * height)
        .map(|i| {
            let (row, col) = (i / width, i % width);
            let at = row * info.line_size + col * channels;
            [buf[at], buf[at + 1], buf[at + 2]]
        })
        .collect();
    Screenshot { width, height, rgb }
}

/// A plot as seen on the screenshot: the box its series pixels fill, and how many of each.
#[derive(Debug)]
struct SeenPlot {
    top: usize,
    bottom: usize,
    left: usize,
    right: usize,
    new_pixels: usize,
    old_pixels: usize,
}

fn near(p: [u8; 3], c: plotters::style::RGBColor) -> bool {
    let d = |a: u8, b: u8| (a as i32 - b as i32).abs() <= 8;
    d(p[0], c.0) && d(p[1], c.1) && d(p[2], c.2)
}

/// Finds the first plot on the screenshot: pixels of the two series colours (which the page
/// uses nowhere else), grouped into bands of rows with no gap of a plot's height; the first band must
/// be a plot-sized box with a drawn line of each colour in it. The error says what is missing.
fn first_plot(s: &Screenshot) -> Result<SeenPlot, String> {
    use rollout_guard::report::plot::{NEW, OLD};
    let coloured = |row: usize| {
        (0..s.width).any(|x| {
            let p = s.rgb[row * s.width + x];
            near(p, NEW) || near(p, OLD)
        })
    };
    let top = (0..s.height)
        .find(|r| coloured(*r))
        .ok_or("no pixel of either series colour on the page")?;
    let mut bottom = top;
    let mut row = top;
    // A gap of a plot's height ends it: the two series may be far apart within one plot, and
    // plots are far apart on the page (evidence tables and queries in between).
    let gap = rollout_guard::report::plot::SIZE.1 as usize;
    while row < s.height && row <= bottom + gap {
        if coloured(row) {
            bottom = row;
        }
        row += 1;
    }
    let (mut left, mut right, mut new_pixels, mut old_pixels) = (s.width, 0, 0, 0);
    for y in top..=bottom {
        for x in 0..s.width {
            let p = s.rgb[y * s.width + x];
            let (n, o) = (near(p, NEW), near(p, OLD));
            if n || o {
                left = left.min(x);
                right = right.max(x);
            }
            new_pixels += n as usize;
            old_pixels += o as usize;
        }
    }
    let plot = SeenPlot {
        top,
        bottom,
        left,
        right,
        new_pixels,
        old_pixels,
    };
    let (w, h) = rollout_guard::report::plot::SIZE;
    if plot.bottom - plot.top > h as usize || plot.right - plot.left > w as usize {
        return Err(format!(
            "the series colours spread beyond one plot: {plot:?}"
        ));
    }
    // The old pods' line across the plot (hundreds of pixels), and the new pods' series drawn
    // beyond its legend swatch (18 × 3 pixels): with a rollback on the first failing
    // evaluation, the new pods may have one interval, one marker of about 50 pixels.
    if plot.old_pixels < 300 {
        return Err(format!(
            "too few pixels of the old series to be a drawn line: {plot:?}"
        ));
    }
    if plot.new_pixels < 54 + 30 {
        return Err(format!(
            "the new series is not drawn beyond its legend: {plot:?}"
        ));
    }
    if plot.right - plot.left < (w as usize) / 2 {
        return Err(format!("the series do not run across the plot: {plot:?}"));
    }
    Ok(plot)
}

#[test]
fn the_html_report_shows_its_plot_in_chromium() {
    let (dir, path) = records_copy();
    let p = path.to_str().unwrap();
    let page = dir.path().join("report.html");
    let bare = dir.path().join("bare.html");
    report(&["--records", p, "--output", page.to_str().unwrap()]);
    report(&[
        "--records",
        p,
        "--format",
        "html",
        "--no-plots",
        "--output",
        bare.to_str().unwrap(),
    ]);

    // The SVG survives parsing: the DOM Chromium built has the plots, with both series drawn.
    let dom = headless(&page, &["--dump-dom"]);
    assert!(dom.status.success(), "{}", text(&dom.stderr));
    let dom = text(&dom.stdout);
    let plots = dom.matches("<svg class=\"plot\"").count();
    assert!(plots >= 1, "no plot in the DOM:\n{dom}");
    assert!(dom.contains(r#"<svg class="plot" data-rule="class-loading-errors""#));
    for colour in ["#E6550D", "#1F6FB4"] {
        assert!(
            dom.contains(&format!(
                "<polyline fill=\"none\" opacity=\"1\" stroke=\"{colour}\""
            )),
            "no {colour} line in the DOM"
        );
    }
    let bare_dom = text(&headless(&bare, &["--dump-dom"]).stdout);
    assert!(bare_dom.contains("<h1>") && !bare_dom.contains("<svg"));

    // And it is drawn: orange and blue lines in a plot-sized box, near the top of the page.
    let shot = screenshot(&page);
    assert_eq!((shot.width, shot.height), (1200, 2000));
    let seen =
        first_plot(&shot).unwrap_or_else(|e| panic!("the plot is not on the screenshot: {e}"));
    assert!(seen.top < 1500, "{seen:?}");

    // The same check sees that the plot is missing from the report without plots.
    let bare_shot = screenshot(&bare);
    let missing = first_plot(&bare_shot).expect_err("a plot seen where there is none");
    assert!(missing.contains("no pixel"), "{missing}");
}

/// Issue 16: records that leave the cluster. The same report from the file, from stdin, and
/// from a daemon's `/records` endpoint (the telemetry server with the reader `run` gives it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_reads_records_from_stdin_and_from_the_records_endpoint() {
    use rollout_guard::adapters::telemetry::{self, Health, Metrics, RecordsQuery};
    let (_dir, path) = records_copy();
    let t = truth(&path);
    let from_file = report(&["--records", path.to_str().unwrap()]);

    let mut child = Command::new(env!("CARGO_BIN_EXE_rollout-guard"))
        .args(["report", "--records", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let mut stdin = child.stdin.take().unwrap();
    std::thread::spawn(move || std::io::Write::write_all(&mut stdin, &bytes).unwrap());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let from_stdin = text(&out.stdout);

    let served = path.clone();
    let reader: telemetry::RecordsReader = std::sync::Arc::new(move |q: RecordsQuery| {
        let filter = records::Filter {
            namespace: q.namespace,
            deployment: q.deployment,
            revision: q.revision,
        };
        records::json_lines(&served, &filter).map_err(|e| e.to_string())
    });
    let app = telemetry::router(
        std::sync::Arc::new(Metrics::new()),
        Health::default(),
        Some(reader),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let url = format!(
        "http://{addr}/records?namespace={}&deployment=shop",
        t.namespace
    );
    let from_endpoint = tokio::task::spawn_blocking(move || report(&["--records", url.as_str()]))
        .await
        .unwrap();
    server.abort();

    // The same story, line for line; only the lines naming where the records came from
    // differ.
    assert!(from_file.contains("rolled back"), "{from_file}");
    for (other, source) in [(&from_stdin, "stdin"), (&from_endpoint, "records endpoint")] {
        assert_eq!(other.lines().count(), from_file.lines().count(), "{other}");
        let differing: Vec<(&str, &str)> = other
            .lines()
            .zip(from_file.lines())
            .filter(|(a, b)| a != b)
            .collect();
        assert!(differing.len() <= 2, "{differing:#?}");
        for (line, _) in differing {
            assert!(line.contains(source), "{line}");
        }
    }
}
