//! Crash-safe file writes, shared by snapshots, keyfiles and the CLI's outputs.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Expands a leading `~` to the home directory (`$HOME`); other paths, and
/// `~` when `HOME` is unset, come back as they are.
///
/// ```
/// use std::path::Path;
/// let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
/// let got = akihabara_core::fs::expand_tilde(Path::new("~/.bittensor"));
/// match home {
///     Some(h) => assert_eq!(got, h.join(".bittensor")),
///     None => assert_eq!(got, Path::new("~/.bittensor")),
/// }
/// assert_eq!(akihabara_core::fs::expand_tilde(Path::new("/etc")), Path::new("/etc"));
/// ```
pub fn expand_tilde(path: &Path) -> PathBuf {
    let Ok(rest) = path.strip_prefix("~") else {
        return path.to_path_buf();
    };
    match std::env::var_os("HOME") {
        Some(home) => PathBuf::from(home).join(rest),
        None => path.to_path_buf(),
    }
}

/// Why [`read_limited`] or [`read_text_limited`] returned no contents.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// The file could not be opened or read.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The file holds more than the caller allows.
    #[error("{size} bytes, more than the {max} allowed")]
    TooLarge {
        /// Bytes the file holds (for a file that grows or has no size, the
        /// bytes read before stopping: `max + 1`).
        size: u64,
        /// The most bytes the caller accepts.
        max: u64,
    },
    /// [`read_text_limited`]: the file is not UTF-8 text.
    #[error("not UTF-8 text (byte {valid_up_to})")]
    NotText {
        /// The offset of the first byte that is not part of UTF-8 text.
        valid_up_to: usize,
    },
}

/// Reads the whole of `path`, refusing a file of more than `max` bytes
/// before reading it (by its size) or while reading it (a pipe, a device,
/// a file that grows). The buffer is sized once, so no partial copy of a
/// secret is left behind by a reallocation.
pub fn read_limited(path: &Path, max: u64) -> Result<Vec<u8>, ReadError> {
    let file = File::open(path)?;
    let len = file.metadata()?.len();
    if len > max {
        return Err(ReadError::TooLarge { size: len, max });
    }
    read_sized(file, max, len)
}

/// Why [`open_regular`] did not open a file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The file could not be opened (missing, no permission).
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A FIFO, device, directory or symbolic link.
    #[error("not a regular file")]
    NotRegular,
    /// The file holds more than the caller allows.
    #[error("{size} bytes, more than the {max} allowed")]
    TooLarge {
        /// Bytes the file holds.
        size: u64,
        /// The most bytes the caller accepts.
        max: u64,
    },
}

/// Opens `path` for reading only if it is a regular file of at most `max`
/// bytes. The open never blocks and never follows a link in the last
/// component (`O_NONBLOCK | O_NOFOLLOW`): a FIFO, device or link planted
/// there is refused, not waited on. Its type and size are checked on the
/// open file, not by path, so what is read is what was checked. (Only the
/// last component is opened without following links; the directories above
/// are the caller's to check, as `market::volumes::open_output` does.)
/// Returns the file and its size.
///
/// ```
/// use akihabara_core::fs::{open_regular, OpenError};
/// let dir = std::env::temp_dir().join(format!("akihabara-open-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// std::fs::write(dir.join("f"), b"12345").unwrap();
/// assert_eq!(open_regular(&dir.join("f"), 5).unwrap().1, 5);
/// assert!(matches!(open_regular(&dir.join("f"), 4), Err(OpenError::TooLarge { size: 5, max: 4 })));
/// assert!(matches!(open_regular(&dir, 5), Err(OpenError::NotRegular)));
/// # std::fs::remove_dir_all(&dir).unwrap();
/// ```
pub fn open_regular(path: &Path, max: u64) -> Result<(File, u64), OpenError> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC);
    }
    let file = match options.open(path) {
        Ok(f) => f,
        #[cfg(unix)]
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Err(OpenError::NotRegular),
        Err(e) => return Err(e.into()),
    };
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(OpenError::NotRegular);
    }
    if meta.len() > max {
        return Err(OpenError::TooLarge {
            size: meta.len(),
            max,
        });
    }
    Ok((file, meta.len()))
}

/// [`read_limited`] of a stream (standard input, a pipe): at most `max`
/// bytes, refused beyond. The buffer is sized once (up to 64 KiB), and what
/// was read is wiped when it is refused.
///
/// ```
/// use akihabara_core::fs::{read_limited_from, ReadError};
/// assert_eq!(read_limited_from(&b"12345"[..], 5).unwrap(), b"12345");
/// assert!(matches!(
///     read_limited_from(std::io::repeat(b'x'), 4),
///     Err(ReadError::TooLarge { size: 5, max: 4 })
/// ));
/// ```
pub fn read_limited_from(reader: impl Read, max: u64) -> Result<Vec<u8>, ReadError> {
    read_sized(reader, max, 0)
}

/// Reads at most `max` bytes of `reader`, whose size is `len` (0: unknown).
fn read_sized(reader: impl Read, max: u64, len: u64) -> Result<Vec<u8>, ReadError> {
    // The size (plus one byte to see the end), or up to 64 KiB when there is
    // none (a pipe or a device).
    let capacity = if len > 0 { len } else { max.min(1 << 16) } + 1;
    let mut data = Vec::with_capacity(usize::try_from(capacity).unwrap_or(usize::MAX));
    reader.take(max + 1).read_to_end(&mut data)?;
    if data.len() as u64 > max {
        let size = data.len() as u64;
        drop(zeroize::Zeroizing::new(data));
        return Err(ReadError::TooLarge { size, max });
    }
    Ok(data)
}

/// [`read_limited`] of a UTF-8 text file (a config, a password file). A file
/// that is not text is refused naming the offset of its first bad byte, and
/// the bytes read are wiped first (they may be a secret all the same).
///
/// ```
/// use akihabara_core::fs::{read_text_limited, ReadError};
/// let dir = std::env::temp_dir().join(format!("akihabara-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// std::fs::write(dir.join("ok.toml"), "a = 1\n").unwrap();
/// assert_eq!(read_text_limited(&dir.join("ok.toml"), 64).unwrap(), "a = 1\n");
/// std::fs::write(dir.join("bin"), b"ab\xffc").unwrap();
/// let e = read_text_limited(&dir.join("bin"), 64).unwrap_err();
/// assert!(matches!(e, ReadError::NotText { valid_up_to: 2 }));
/// assert_eq!(e.to_string(), "not UTF-8 text (byte 2)");
/// # std::fs::remove_dir_all(&dir).unwrap();
/// ```
pub fn read_text_limited(path: &Path, max: u64) -> Result<String, ReadError> {
    String::from_utf8(read_limited(path, max)?).map_err(|e| {
        let valid_up_to = e.utf8_error().valid_up_to();
        drop(zeroize::Zeroizing::new(e.into_bytes()));
        ReadError::NotText { valid_up_to }
    })
}

/// Who may read a written file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Access {
    /// The process's default permissions; the parent directory must exist.
    Shared,
    /// Mode 0600, with missing parent directories created with mode 0700
    /// (keyfiles).
    Private,
}

/// Names tried for the temporary file before giving up (each is 128 random
/// bits, so a second attempt only happens if someone planted that name).
const TEMP_ATTEMPTS: usize = 8;

/// Writes `data` to `path` through a temporary file beside it: write, fsync,
/// rename, fsync the directory. A crash or a failure at any point leaves the
/// old file intact, and no temporary file is left behind on failure.
///
/// The temporary file is `.<name>.<32 random hex digits>.tmp` in the target's
/// directory, created exclusively (`O_CREAT | O_EXCL`) without following a
/// symbolic link (`O_NOFOLLOW`), with its final mode (0600 for
/// [`Access::Private`]) before the first byte is written: a file or a link
/// planted under any name cannot receive the data or lend it its mode.
pub fn write_atomic(path: &Path, data: &[u8], access: Access) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if access == Access::Private {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            builder.mode(0o700);
        }
        builder.create(dir)?;
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (tmp, mut f) = create_temp(dir, &name, access)?;
    let result = (|| {
        f.write_all(data)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        // Persist the rename itself.
        File::open(dir).and_then(|d| d.sync_all())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Creates a fresh temporary file in `dir` for `name`, exclusively and
/// without following links, with `access`'s mode from the start.
fn create_temp(dir: &Path, name: &str, access: Access) -> std::io::Result<(PathBuf, File)> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC);
        if access == Access::Private {
            options.mode(0o600);
        }
    }
    #[cfg(not(unix))]
    let _ = access;
    let mut last = None;
    for _ in 0..TEMP_ATTEMPTS {
        let mut random = [0u8; 16];
        getrandom::fill(&mut random)
            .map_err(|e| std::io::Error::other(format!("no system randomness: {e}")))?;
        let tmp = dir.join(format!(".{name}.{}.tmp", hex::encode(random)));
        match options.open(&tmp) {
            Ok(f) => return Ok((tmp, f)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no temporary file name was free")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A FIFO is refused without waiting for a writer, a link without being
    /// followed, and a missing file is the I/O error it is.
    #[cfg(unix)]
    #[test]
    fn open_regular_never_blocks_or_follows() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.expect("mkfifo runs").success());
        assert!(matches!(
            open_regular(&fifo, 10),
            Err(OpenError::NotRegular)
        ));
        std::fs::write(dir.path().join("real"), b"data").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(dir.path().join("real"), &link).unwrap();
        assert!(matches!(
            open_regular(&link, 10),
            Err(OpenError::NotRegular)
        ));
        assert!(matches!(
            open_regular(&dir.path().join("none"), 10),
            Err(OpenError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound
        ));
        let (mut f, len) = open_regular(&dir.path().join("real"), 4).unwrap();
        let mut text = String::new();
        f.read_to_string(&mut text).unwrap();
        assert_eq!((len, text.as_str()), (4, "data"));
    }

    fn names(dir: &Path) -> Vec<std::ffi::OsString> {
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn reads_are_limited() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"12345").unwrap();
        assert_eq!(read_limited(&path, 5).unwrap(), b"12345");
        assert!(matches!(
            read_limited(&path, 4),
            Err(ReadError::TooLarge { size: 5, max: 4 })
        ));
        // A device with no size is cut off after the limit.
        #[cfg(unix)]
        assert!(matches!(
            read_limited(Path::new("/dev/zero"), 100),
            Err(ReadError::TooLarge {
                size: 101,
                max: 100
            })
        ));
        assert!(matches!(
            read_limited(&dir.path().join("missing"), 4),
            Err(ReadError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound
        ));
    }

    #[test]
    fn replaces_atomically_and_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.json");
        write_atomic(&path, b"one", Access::Shared).unwrap();
        write_atomic(&path, b"two", Access::Shared).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        // A missing directory fails for Shared and leaves nothing behind.
        assert!(write_atomic(&dir.path().join("no/f"), b"x", Access::Shared).is_err());
        assert_eq!(names(dir.path()), vec![std::ffi::OsString::from("f.json")]);
        // Private creates 0700 directories and a 0600 file.
        let key = dir.path().join("w/hotkeys/k");
        write_atomic(&key, b"secret", Access::Private).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&key), 0o600);
            assert_eq!(mode(&dir.path().join("w/hotkeys")), 0o700);
        }
    }

    /// The old temporary name was `.<name>.tmp<pid>`: a 0644 file planted
    /// there kept its mode for the secret, and a link planted there sent the
    /// secret to the link's target. Neither may matter now.
    #[cfg(unix)]
    #[test]
    fn planted_temp_files_and_links_cannot_catch_the_secret() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let hotkeys = dir.path().join("hotkeys");
        std::fs::create_dir(&hotkeys).unwrap();
        std::fs::set_permissions(&hotkeys, std::fs::Permissions::from_mode(0o700)).unwrap();
        let key = hotkeys.join("default");
        let old_name = hotkeys.join(format!(".default.tmp{}", std::process::id()));
        // A world-readable file where the temporary file used to go.
        std::fs::write(&old_name, b"planted").unwrap();
        std::fs::set_permissions(&old_name, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_atomic(&key, b"secret one", Access::Private).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&key), 0o600);
        assert_eq!(std::fs::read(&key).unwrap(), b"secret one");
        assert_eq!(std::fs::read(&old_name).unwrap(), b"planted");

        // A link where the temporary file used to go, pointing outside.
        std::fs::remove_file(&old_name).unwrap();
        let outside = dir.path().join("stolen");
        std::os::unix::fs::symlink(&outside, &old_name).unwrap();
        write_atomic(&key, b"secret two", Access::Private).unwrap();
        assert!(
            std::fs::symlink_metadata(&outside).is_err(),
            "nothing was written through the link"
        );
        assert_eq!(std::fs::read(&key).unwrap(), b"secret two");
        assert_eq!(mode(&key), 0o600);
        // Only the key and the planted link remain: no temporary file is left.
        assert_eq!(
            names(&hotkeys),
            vec![
                std::ffi::OsString::from(format!(".default.tmp{}", std::process::id())),
                std::ffi::OsString::from("default"),
            ]
        );
    }

    #[cfg(unix)]
    #[test]
    fn temp_files_are_created_exclusively_without_following_links() {
        let dir = tempfile::tempdir().unwrap();
        let (tmp, _f) = create_temp(dir.path(), "k", Access::Private).unwrap();
        let name = tmp.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with(".k.") && name.ends_with(".tmp"), "{name}");
        assert_eq!(name.len(), ".k.".len() + 32 + ".tmp".len(), "{name}");
        // Two calls never share a name.
        let (other, _g) = create_temp(dir.path(), "k", Access::Private).unwrap();
        assert_ne!(tmp, other);
        // The same flags refuse an existing file and a dangling link.
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.custom_flags(libc::O_NOFOLLOW);
        }
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(dir.path().join("target"), &link).unwrap();
        assert_eq!(
            options.open(&link).unwrap_err().kind(),
            std::io::ErrorKind::AlreadyExists
        );
        assert!(std::fs::symlink_metadata(dir.path().join("target")).is_err());
    }
}
