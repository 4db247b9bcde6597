//! Standard output that tolerates a closed pipe (`akihabara … | head`).

use std::io::Write;

/// Writes `text` to standard output and flushes it.
pub fn print(text: impl AsRef<str>) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_ref().as_bytes())?;
    out.flush()
}

/// Writes `text` and a newline.
pub fn println(text: impl AsRef<str>) -> std::io::Result<()> {
    print(format!("{}\n", text.as_ref()))
}
