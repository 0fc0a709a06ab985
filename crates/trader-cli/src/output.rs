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
    eprintln!("error: {err:#}");
}

/// Prints a progress or refusal line to stderr (stdout stays the result).
pub(crate) fn eprint(text: &str) {
    eprint!("{text}");
}
