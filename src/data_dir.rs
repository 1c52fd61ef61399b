//! The data directory (`--data-dir`): what outlives a restart of this process.
//!
//! It holds the session secret when `--secret` is not given (made once, at the
//! first start, so that cookies stay valid across restarts) and, between a stop
//! and the next start, the rooms (see `rooms::snapshot`). Every file is written
//! whole or not at all: a temporary file, `fsync`, `rename`, and an `fsync` of
//! the directory, so a crash mid-write leaves the old file or none. The
//! directory is locked while a server uses it: two servers sharing one would
//! overwrite each other's rooms.
//!
//! A directory that cannot be created, locked or written is a [`DataDirError`]
//! naming it, and the server does not start.

use std::fmt;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// The secret's file: 64 hex digits, readable by the server's user only.
const SECRET_FILE: &str = "secret";

/// Held locked while a server uses the directory.
const LOCK_FILE: &str = "lock";

/// Why the data directory cannot be used: which one, what was being done, and
/// what the system said.
#[derive(Debug)]
pub struct DataDirError {
    path: PathBuf,
    doing: &'static str,
    cause: io::Error,
}

impl fmt::Display for DataDirError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "data directory {}: cannot {}: {} (give --data-dir a directory this user can \
             write, or --ephemeral to keep nothing)",
            self.path.display(),
            self.doing,
            self.cause
        )
    }
}

impl std::error::Error for DataDirError {}

/// An open data directory, locked for this process until dropped.
#[derive(Debug)]
pub struct DataDir {
    path: PathBuf,
    /// Holds the directory's lock; released when the process ends, however it ends.
    _lock: File,
}

impl DataDir {
    /// Creates the directory if missing (readable by this user only), and locks it.
    pub fn open(path: &Path) -> Result<Self, DataDirError> {
        let fail = |doing| {
            move |cause| DataDirError {
                path: path.to_owned(),
                doing,
                cause,
            }
        };
        create_private_dir(path).map_err(fail("create it"))?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path.join(LOCK_FILE))
            .map_err(fail("write in it"))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(fail("lock it")(io::Error::other(
                    "another server is using it",
                )));
            }
            Err(TryLockError::Error(cause)) => return Err(fail("lock it")(cause)),
        }
        Ok(Self {
            path: path.to_owned(),
            _lock: lock,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The session secret kept here; made (and kept) at the first call.
    pub fn secret(&self) -> Result<String, DataDirError> {
        let file = self.path.join(SECRET_FILE);
        let fail = |doing| {
            let file = file.clone();
            move |cause| DataDirError {
                path: file,
                doing,
                cause,
            }
        };
        match fs::read_to_string(&file) {
            Ok(kept) if !kept.trim().is_empty() => return Ok(kept.trim().to_owned()),
            // An empty file is not a secret; making a new one would sign
            // everyone out without a word, so say so instead.
            Ok(_) => {
                return Err(fail("read the secret")(io::Error::other(
                    "the file is empty",
                )));
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => return Err(fail("read the secret")(error)),
        }
        let secret: String = (0..2)
            .map(|_| format!("{:032x}", rand::random::<u128>()))
            .collect();
        self.write(SECRET_FILE, secret.as_bytes())
            .map_err(fail("write the secret"))?;
        tracing::info!(file = %file.display(), "made a session secret and kept it");
        Ok(secret)
    }

    /// Writes `name` in the directory whole or not at all (readable by this
    /// user only): a temporary file, synced, renamed over the old, and the
    /// directory synced so that the rename survives a power cut.
    pub fn write(&self, name: &str, bytes: &[u8]) -> io::Result<()> {
        let target = self.path.join(name);
        let temporary = self.path.join(format!("{name}.tmp"));
        let mut file = private_file(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&temporary, &target)?;
        self.sync()
    }

    /// The whole of file `name`, if there is one.
    pub fn read(&self, name: &str) -> io::Result<Option<Vec<u8>>> {
        match File::open(self.path.join(name)) {
            Ok(mut file) => {
                let mut bytes = Vec::new();
                file.read_to_end(&mut bytes)?;
                Ok(Some(bytes))
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Removes file `name` for good (synced), or renames it to `aside` if given.
    pub fn consume(&self, name: &str, aside: Option<&str>) -> io::Result<()> {
        let file = self.path.join(name);
        match aside {
            Some(aside) => fs::rename(&file, self.path.join(aside))?,
            None => fs::remove_file(&file)?,
        }
        self.sync()
    }

    fn sync(&self) -> io::Result<()> {
        #[cfg(unix)]
        File::open(&self.path)?.sync_all()?;
        Ok(())
    }
}

#[cfg(unix)]
fn create_private_dir(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
}

#[cfg(not(unix))]
fn create_private_dir(path: &Path) -> io::Result<()> {
    fs::create_dir_all(path)
}

/// A new (truncated) file only this user may read and write.
fn private_file(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let file = options.open(path)?;
    // The mode applies only to a file this call created: a leftover
    // temporary file keeps its own, so set it again.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(fs::Permissions::from_mode(0o600))?;
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "chat-data-dir-{name}-{}-{:x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    /// The secret is made once, kept 0600, and read back the same.
    #[test]
    fn the_secret_is_made_once_and_kept_private() {
        let path = scratch("secret");
        let first = DataDir::open(&path).unwrap().secret().unwrap();
        let again = DataDir::open(&path).unwrap().secret().unwrap();
        assert_eq!(first, again);
        assert_eq!(first.len(), 64);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(path.join(SECRET_FILE)).unwrap().permissions();
            assert_eq!(mode.mode() & 0o777, 0o600);
        }
        fs::remove_dir_all(&path).unwrap();
    }

    /// A directory in use by another server is refused, naming it.
    #[test]
    fn a_directory_in_use_is_refused() {
        let path = scratch("locked");
        let first = DataDir::open(&path).unwrap();
        let second = DataDir::open(&path).unwrap_err().to_string();
        assert!(second.contains(&path.display().to_string()), "{second}");
        assert!(second.contains("another server"), "{second}");
        drop(first);
        DataDir::open(&path).unwrap();
        fs::remove_dir_all(&path).unwrap();
    }

    /// A write replaces the file whole and leaves no temporary file.
    #[test]
    fn a_write_replaces_the_file_whole() {
        let path = scratch("write");
        let dir = DataDir::open(&path).unwrap();
        dir.write("f", b"old").unwrap();
        dir.write("f", b"new").unwrap();
        assert_eq!(dir.read("f").unwrap().as_deref(), Some(&b"new"[..]));
        assert!(!path.join("f.tmp").exists());
        dir.consume("f", None).unwrap();
        assert_eq!(dir.read("f").unwrap(), None);
        fs::remove_dir_all(&path).unwrap();
    }
}
