//! Word splitting and the `syslet.*` kernel command-line parameters.
//!
//! A dotted boot parameter such as `syslet.mode=test` is not passed to
//! init's argv or environment by the kernel, so init reads `/proc/cmdline`.

use std::fmt;
use std::time::Duration;

use crate::sys::Off;

/// What init runs after mounting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Run every program listed in `/etc/syslet/tests`, print nested KTAP.
    Test,
    /// Run the command line in `/etc/syslet/demo`, stream its output.
    Demo,
    /// Run the command line in `/etc/syslet/cmd` inside `/work`.
    Run,
}

impl Mode {
    /// Parses the value of `syslet.mode=`.
    pub fn parse(s: &str) -> Option<Mode> {
        match s {
            "test" => Some(Mode::Test),
            "demo" => Some(Mode::Demo),
            "run" => Some(Mode::Run),
            _ => None,
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Test => "test",
            Mode::Demo => "demo",
            Mode::Run => "run",
        })
    }
}

/// The `syslet.*` parameters found on the kernel command line.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Params {
    /// `syslet.mode=test|demo|run`; `None` when absent.
    pub mode: Option<Mode>,
    /// `syslet.timeout=SECONDS` (per program; 0 = none); `None` when absent.
    pub timeout: Option<Duration>,
    /// `syslet.off=reboot|poweroff`: how to stop the machine.
    pub off: Off,
    /// Problems met while parsing (unknown mode, bad number, bad quoting).
    pub errors: Vec<String>,
}

/// Parses the text of `/proc/cmdline`.
///
/// Unknown parameters are ignored; malformed `syslet.*` values are
/// recorded in [`Params::errors`] so init can report them and fail.
pub fn parse_params(cmdline: &str) -> Params {
    let mut p = Params::default();
    let words = match split_words(cmdline) {
        Ok(w) => w,
        Err(e) => {
            p.errors.push(format!("/proc/cmdline: {e}"));
            cmdline.split_whitespace().map(str::to_owned).collect()
        }
    };
    for w in words {
        if let Some(v) = w.strip_prefix("syslet.mode=") {
            match Mode::parse(v) {
                Some(m) => p.mode = Some(m),
                None => p.errors.push(format!(
                    "syslet.mode={v}: unknown mode (expected test, demo or run)"
                )),
            }
        } else if let Some(v) = w.strip_prefix("syslet.off=") {
            match v {
                "reboot" => p.off = Off::Reboot,
                "poweroff" => p.off = Off::PowerOff,
                _ => p.errors.push(format!(
                    "syslet.off={v}: unknown (expected reboot or poweroff)"
                )),
            }
        } else if let Some(v) = w.strip_prefix("syslet.timeout=") {
            match v.parse::<u64>() {
                Ok(s) => p.timeout = Some(Duration::from_secs(s)),
                Err(_) => p
                    .errors
                    .push(format!("syslet.timeout={v}: not a whole number of seconds")),
            }
        }
    }
    p
}

/// Splits a command line into words without a shell.
///
/// Whitespace separates words. `'...'` quotes literally; `"..."` quotes
/// with `\"` and `\\` as the only escapes; outside quotes a backslash
/// takes the next character literally. Quotes may sit inside a word
/// (`--name="a b"` gives `--name=a b`); `''` gives an empty word.
///
/// # Errors
///
/// An unterminated quote or a trailing backslash.
pub fn split_words(s: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    // True once the current word has begun (so `''` yields an empty word).
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => cur.push(c),
                        None => return Err("unterminated single quote".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\')) => cur.push(c),
                            Some(c) => {
                                cur.push('\\');
                                cur.push(c);
                            }
                            None => return Err("unterminated double quote".into()),
                        },
                        Some(c) => cur.push(c),
                        None => return Err("unterminated double quote".into()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some(c) => cur.push(c),
                    None => return Err("trailing backslash".into()),
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

/// Joins words back into a line [`split_words`] splits the same way,
/// quoting only the words that need it (for log lines).
pub fn join_words(words: &[String]) -> String {
    let quote = |w: &String| {
        if !w.is_empty() && !w.contains(|c: char| c.is_whitespace() || "'\"\\".contains(c)) {
            w.clone()
        } else if !w.contains('\'') {
            format!("'{w}'")
        } else {
            format!("\"{}\"", w.replace('\\', "\\\\").replace('"', "\\\""))
        }
    };
    words.iter().map(quote).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(s: &str) -> Vec<String> {
        split_words(s).unwrap()
    }

    #[test]
    fn splits_plain_words() {
        assert_eq!(w("  ./a  --x 1\n"), ["./a", "--x", "1"]);
        assert!(w("   ").is_empty());
    }

    #[test]
    fn splits_quotes() {
        assert_eq!(w(r#"a 'b c' "d e""#), ["a", "b c", "d e"]);
        assert_eq!(w(r#"--name="a b"x"#), ["--name=a bx"]);
        assert_eq!(w(r#""q\"uote\\" 'it\s'"#), [r#"q"uote\"#, r"it\s"]);
        assert_eq!(w(r"a\ b ''"), ["a b", ""]);
    }

    #[test]
    fn join_round_trips() {
        for line in [r#"a 'b c' "it's" '' x\"y"#, "plain words", r#""a\\b" '"'"#] {
            let words = w(line);
            assert_eq!(w(&join_words(&words)), words, "{line}");
        }
        assert_eq!(join_words(&w("./a 'b c'")), "./a 'b c'");
    }

    #[test]
    fn rejects_bad_quotes() {
        assert!(split_words("'abc").is_err());
        assert!(split_words("\"abc").is_err());
        assert!(split_words("abc\\").is_err());
    }

    #[test]
    fn parses_params() {
        let p = parse_params("console=ttyS0 panic=-1 syslet.mode=run syslet.timeout=30\n");
        assert_eq!(p.mode, Some(Mode::Run));
        assert_eq!(p.timeout, Some(Duration::from_secs(30)));
        assert!(p.errors.is_empty());

        assert_eq!(p.off, Off::Reboot);

        let p = parse_params("syslet.mode=bogus syslet.timeout=x syslet.off=poweroff");
        assert_eq!(p.mode, None);
        assert_eq!(p.timeout, None);
        assert_eq!(p.off, Off::PowerOff);
        assert_eq!(p.errors.len(), 2);
        assert_eq!(parse_params("syslet.off=halt").errors.len(), 1);

        assert_eq!(parse_params("quiet").mode, None);
    }
}
