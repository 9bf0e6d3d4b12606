//! Throughput of the PHP log parser over a large realistic container log. Not a timed test:
//! run it with `cargo bench --bench phplog` and copy the figure into BENCHMARKS.md.
//!
//! The log is generated in memory (about 100 MB, fixed seed) as the controller would fetch it
//! with `timestamps=true`: every line starts with the kubelet's RFC 3339 timestamp. Most lines
//! are what a PHP pod logs when nothing is wrong (FPM access lines, the application's JSON
//! lines on stderr decorated by FPM, nginx access and upstream lines); about one record in 150
//! is a PHP error, in every format the parser reads (FPM-decorated with the trace
//! interleaved with other workers' output, undecorated, PHP's dated error_log, nginx
//! `FastCGI sent in stderr` with several messages, raw). A second, smaller log is error-heavy
//! (a crash-looping pod: half the records errors, most other lines their traces), the
//! parser's worst case. The generator counts the errors it writes, and the benchmark fails if
//! the parser does not find exactly those.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Instant;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rollout_guard::analysis::phplog::{ErrorKind, LogParser, ParserLimits, PhpError};

const RUNS: usize = 5;

/// A log to generate: its size and how often a record is an error or a trace line.
struct Mix {
    name: &'static str,
    bytes: usize,
    /// Out of `of` records, `errors` start an error and `traces` continue a decorated trace.
    errors: u32,
    traces: u32,
    of: u32,
}

const MIXES: [Mix; 2] = [
    Mix {
        name: "realistic (1 record in 150 an error)",
        bytes: 100 * 1024 * 1024,
        errors: 1,
        traces: 7,
        of: 150,
    },
    Mix {
        name: "error-heavy (crash-looping pod)",
        bytes: 20 * 1024 * 1024,
        errors: 2,
        traces: 1,
        of: 4,
    },
];

/// Error messages (after `PHP Fatal error:  ` etc.), with whether a trace follows.
const FATALS: [&str; 9] = [
    r#"Uncaught Error: Class "App\Billing\LegacyTaxCalculator" not found in /var/www/html/src/Billing/Invoice.php:{n}"#,
    r#"Uncaught Error: Interface "App\Billing\Payable" not found in /var/www/html/src/Billing/Order.php:{n}"#,
    r"Uncaught Error: Call to undefined function App\Billing\format_money() in /var/www/html/src/View.php:{n}",
    "Uncaught RuntimeException: Payment gateway timeout after {n} ms in /var/www/html/src/Gateway.php:{n}",
    "Uncaught TypeError: strlen(): Argument #1 ($string) must be of type string, array given in /var/www/html/src/Util.php:{n}",
    "Uncaught Error: Failed opening required '/var/www/html/src/Billing/removed_helpers.php' (include_path='.:/usr/share/php') in /var/www/html/index.php:{n}",
    "Allowed memory size of 134217728 bytes exhausted (tried to allocate {n} bytes) in /var/www/html/src/Report.php on line {n}",
    "Maximum execution time of 30 seconds exceeded in /var/www/html/src/Export.php on line {n}",
    r#"Trait "App\Support\Loggable" not found in /var/www/html/src/Job.php on line {n}"#,
];
const WARNINGS: [(&str, &str); 4] = [
    (
        "Warning",
        "Undefined array key \"user_{n}\" in /var/www/html/src/Cart.php on line {n}",
    ),
    (
        "Warning",
        "require(/var/www/html/src/Billing/removed_helpers.php): Failed to open stream: No such file or directory in /var/www/html/index.php on line {n}",
    ),
    (
        "Notice",
        "Only variables should be passed by reference in /var/www/html/src/Cart.php on line {n}",
    ),
    (
        "Deprecated",
        "Creation of dynamic property App\\Cart::$total{n} is deprecated in /var/www/html/src/Cart.php on line {n}",
    ),
];
const PATHS: [&str; 5] = [
    "/index.php",
    "/api/orders",
    "/api/cart/items",
    "/health",
    "/checkout",
];

struct Generator {
    rng: StdRng,
    text: String,
    /// Seconds since 16:00:00, advancing slowly.
    clock: f64,
    expected: u64,
    /// Decorated uncaught errors whose trace is still to be written: (pid, lines left).
    open_traces: Vec<(u32, u32)>,
}

impl Generator {
    fn fill(&self, template: &str) -> String {
        let n = (self.clock as u64 * 7919) % 100_000;
        template.replace("{n}", &n.to_string())
    }

    /// Starts a line with the kubelet's timestamp.
    fn line(&mut self) {
        self.clock += 0.0004;
        let secs = self.clock as u64;
        let nanos = ((self.clock - secs as f64) * 1e9) as u64;
        let _ = write!(
            self.text,
            "2026-11-25T{:02}:{:02}:{:02}.{nanos:09}Z ",
            16 + secs / 3600,
            secs / 60 % 60,
            secs % 60
        );
    }

    fn fpm_date(&self) -> String {
        let secs = self.clock as u64;
        format!(
            "25-Nov-2026 {:02}:{:02}:{:02}",
            16 + secs / 3600,
            secs / 60 % 60,
            secs % 60
        )
    }

    fn decorated(&mut self, pid: u32, payload: &str) {
        self.line();
        let date = self.fpm_date();
        let _ = writeln!(
            self.text,
            "[{date}] WARNING: [pool www] child {pid} said into stderr: \"{payload}\""
        );
    }

    fn normal(&mut self) {
        let pid = self.rng.random_range(100..132);
        let path = PATHS[self.rng.random_range(0..PATHS.len())];
        let n = self.rng.random_range(1..100_000);
        match self.rng.random_range(0..10) {
            0..=5 => {
                self.line();
                let _ = writeln!(
                    self.text,
                    "10.0.{}.{} -  25/Nov/2026:16:00:05 +0000 \"GET {path}\" 200",
                    n % 256,
                    n % 200
                );
            }
            6..=7 => {
                let payload = format!(
                    "{{\\\"message\\\":\\\"order placed\\\",\\\"context\\\":{{\\\"order\\\":{n},\\\"path\\\":\\\"{path}\\\"}},\\\"level\\\":200,\\\"channel\\\":\\\"app\\\"}}"
                );
                self.decorated(pid, &payload);
            }
            8 => {
                self.line();
                let _ = writeln!(
                    self.text,
                    "10.0.0.{} - - [25/Nov/2026:16:00:05 +0000] \"GET {path}?page={n} HTTP/1.1\" 200 5123 \"-\" \"kube-probe/1.33\"",
                    n % 256
                );
            }
            _ => {
                self.line();
                let _ = writeln!(
                    self.text,
                    "2026/11/25 16:00:05 [warn] 12#12: *{n} an upstream response is buffered to a temporary file /var/cache/nginx/fastcgi_temp/1/00/{n} while reading upstream, client: 10.0.0.7, server: _, request: \"GET {path} HTTP/1.1\""
                );
            }
        }
    }

    /// Writes one error in a random format and counts the PHP messages it wrote.
    fn error(&mut self) {
        let template = FATALS[self.rng.random_range(0..FATALS.len())];
        let fatal = self.fill(template);
        let uncaught = fatal.starts_with("Uncaught ");
        let (level, template) = WARNINGS[self.rng.random_range(0..WARNINGS.len())];
        let warning = self.fill(template);
        let trace = [
            "Stack trace:",
            "#0 /var/www/html/index.php(12): App\\Kernel->handle(Object(App\\Request))",
            "#1 {main}",
        ];
        let thrown = "  thrown in /var/www/html/src/Billing/Invoice.php on line 42";
        match self.rng.random_range(0..6) {
            // FPM-decorated; the trace comes later, between other workers' lines.
            0 | 1 => {
                let pid = self.rng.random_range(100..132);
                if self.open_traces.iter().any(|&(p, _)| p == pid) {
                    return;
                }
                self.decorated(
                    pid,
                    &format!("NOTICE: PHP message: PHP Fatal error:  {fatal}"),
                );
                self.expected += 1;
                if uncaught {
                    self.open_traces.push((pid, 4));
                }
            }
            // Undecorated (the official image), trace adjacent.
            2 => {
                self.line();
                let _ = writeln!(self.text, "NOTICE: PHP message: PHP {level}:  {warning}");
                self.line();
                let _ = writeln!(self.text, "NOTICE: PHP message: PHP Fatal error:  {fatal}");
                self.expected += 2;
                if uncaught {
                    for t in trace.iter().chain([&thrown]) {
                        self.line();
                        let _ = writeln!(self.text, "{t}");
                    }
                }
            }
            // PHP's own error_log, dated.
            3 => {
                self.line();
                let date = self.fpm_date();
                let _ = writeln!(self.text, "[{date} UTC] PHP Fatal error:  {fatal}");
                self.expected += 1;
                if uncaught {
                    for t in trace.iter().chain([&thrown]) {
                        self.line();
                        let _ = writeln!(self.text, "{t}");
                    }
                }
            }
            // nginx relaying two messages in one line.
            4 => {
                self.line();
                let _ = write!(
                    self.text,
                    "2026/11/25 16:00:05 [error] 12#12: *42 FastCGI sent in stderr: \"PHP message: PHP {level}:  {warning}; PHP message: PHP Fatal error:  {fatal}"
                );
                self.expected += 2;
                let tail = "\" while reading response header from upstream, client: 10.0.0.7, server: _, request: \"GET /checkout HTTP/1.1\", upstream: \"fastcgi://127.0.0.1:9000\", host: \"shop\"";
                if uncaught {
                    self.text.push('\n');
                    for t in trace {
                        self.line();
                        let _ = writeln!(self.text, "{t}");
                    }
                    self.line();
                    let _ = writeln!(self.text, "{thrown}{tail}");
                } else {
                    let _ = writeln!(self.text, "{tail}");
                }
            }
            // Raw, as the CLI writes it.
            _ => {
                self.line();
                let _ = writeln!(self.text, "PHP {level}:  {warning}");
                self.expected += 1;
            }
        }
    }

    /// Writes the next line of a pending decorated trace, if any.
    fn trace_step(&mut self) {
        if self.open_traces.is_empty() {
            return;
        }
        let i = self.rng.random_range(0..self.open_traces.len());
        let (pid, left) = self.open_traces[i];
        let payload = match left {
            4 => "Stack trace:",
            3 => "#0 /var/www/html/index.php(12): App\\Kernel->handle(Object(App\\Request))",
            2 => "#1 {main}",
            _ => "  thrown in /var/www/html/src/Billing/Invoice.php on line 42",
        };
        self.decorated(pid, payload);
        if left == 1 {
            self.open_traces.swap_remove(i);
        } else {
            self.open_traces[i].1 -= 1;
        }
    }
}

fn generate(mix: &Mix) -> (String, u64) {
    let mut g = Generator {
        rng: StdRng::seed_from_u64(2026),
        text: String::with_capacity(mix.bytes + 4096),
        clock: 0.0,
        expected: 0,
        open_traces: Vec::new(),
    };
    while g.text.len() < mix.bytes {
        let roll = g.rng.random_range(0..mix.of);
        if roll < mix.errors {
            g.error();
        } else if roll < mix.errors + mix.traces {
            g.trace_step();
        } else {
            g.normal();
        }
    }
    while !g.open_traces.is_empty() {
        g.trace_step();
    }
    (g.text, g.expected)
}

fn parse(text: &str) -> (Vec<PhpError>, u64) {
    let mut parser = LogParser::new(ParserLimits::default());
    let mut out = Vec::new();
    for line in text.lines() {
        parser.push_line(line, &mut out);
    }
    parser.finish(&mut out);
    (out, parser.stats().orphan_trace_lines)
}

fn main() {
    for mix in &MIXES {
        measure(mix);
    }
}

fn measure(mix: &Mix) {
    let started = Instant::now();
    let (text, expected) = generate(mix);
    let lines = text.lines().count();
    println!(
        "{}: generated {:.1} MB, {lines} lines, {expected} PHP errors in {:.1} s",
        mix.name,
        text.len() as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );

    let mut seconds = Vec::with_capacity(RUNS);
    let mut found = Vec::new();
    for _ in 0..RUNS {
        let started = Instant::now();
        let (events, orphans) = parse(&text);
        seconds.push(started.elapsed().as_secs_f64());
        assert_eq!(orphans, 0, "every trace line regrouped");
        found = events;
    }
    assert_eq!(
        found.len() as u64,
        expected,
        "the parser finds every error written"
    );
    assert!(found.iter().all(|e| e.time.is_some()));
    let mut by_kind: BTreeMap<ErrorKind, usize> = BTreeMap::new();
    for e in &found {
        *by_kind.entry(e.kind).or_default() += 1;
    }

    seconds.sort_by(f64::total_cmp);
    let mb = text.len() as f64 / 1e6;
    let median = seconds[RUNS / 2];
    println!(
        "  parsed {RUNS} times: median {median:.3} s = {:.0} MB/s ({:.1} M lines/s), best {:.0} MB/s",
        mb / median,
        lines as f64 / median / 1e6,
        mb / seconds[0]
    );
    println!("  events found: {} (expected {expected})", found.len());
    for (kind, n) in by_kind {
        println!("    {kind:<24} {n}");
    }
}
