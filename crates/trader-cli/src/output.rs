//! The one place that writes to stdout (and the final error line to stderr).

#![allow(clippy::print_stdout, clippy::print_stderr)]

/// Prints a command's result.
pub(crate) fn print(text: &str) {
    print!("{text}");
    if !text.ends_with('\n') {
        println!();
    }
}

/// Prints a value as pretty JSON.
pub(crate) fn print_json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Prints an error with its chain of causes.
pub(crate) fn error(err: &anyhow::Error) {
    eprintln!("error: {}", error_text(err));
}

/// An error and its causes, `: `-separated, each text once: a cause whose
/// text its parent already quotes (sqlx's database errors, for one) is left
/// out.
pub(crate) fn error_text(err: &anyhow::Error) -> String {
    let mut text = String::new();
    let mut previous = String::new();
    for cause in err.chain() {
        let part = cause.to_string();
        if !previous.is_empty() && previous.contains(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
        previous = part;
    }
    text
}

/// Prints a progress or refusal line to stderr (stdout stays the result).
pub(crate) fn eprint(text: &str) {
    eprint!("{text}");
}

#[cfg(test)]
mod tests {
    use super::error_text;

    /// Quotes its source's text in its own, as sqlx's database errors do.
    #[derive(Debug)]
    struct Quoting(Inner);

    #[derive(Debug)]
    struct Inner;

    impl std::fmt::Display for Quoting {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "error returned from database: {}", self.0)
        }
    }

    impl std::fmt::Display for Inner {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("(code: 2067) UNIQUE constraint failed")
        }
    }

    impl std::error::Error for Quoting {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    impl std::error::Error for Inner {}

    #[test]
    fn a_cause_quoted_by_its_parent_is_printed_once() {
        let err = anyhow::Error::new(Quoting(Inner)).context("store s.sqlite: writing an order");
        assert_eq!(
            error_text(&err),
            "store s.sqlite: writing an order: error returned from database: (code: 2067) UNIQUE constraint failed"
        );
        let err = anyhow::anyhow!("inner").context("outer");
        assert_eq!(error_text(&err), "outer: inner");
    }
}
