use super::*;

#[test]
fn scratch_print() {
    for text in [
        include_str!("../../tests/data/php-fpm-logs/fpm8.2-decorated-new-release-missing-classes.log"),
        include_str!("../../tests/data/php-fpm-logs/fpm8.2-undecorated-old-release.log"),
    ] {
        for e in parse_log(text) {
            println!("{:?} | {} | {:?} | {} | {}", e.kind, e.signature, e.time.map(|t| t.to_string()), e.trace_lines, e.first_line);
        }
        println!("----");
    }
}
