//! The user the server runs as: `initdb` and `postgres` refuse to run as root.

use std::os::unix::fs::{MetadataExt, chown};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

/// An unprivileged user to run the server as, when this process is root.
#[derive(Debug)]
pub(crate) struct ServerUser {
    name: &'static str,
    uid: u32,
    gid: u32,
}

impl ServerUser {
    /// `nobody` (from `/etc/passwd`, else uid and gid 65534) when this process runs as root;
    /// `None` otherwise: the server then runs as the current user.
    pub(crate) fn for_this_process() -> Option<ServerUser> {
        // SAFETY: geteuid(2) always succeeds and touches no memory of ours.
        if unsafe { libc::geteuid() } != 0 {
            return None;
        }
        let name = "nobody";
        let (uid, gid) = std::fs::read_to_string("/etc/passwd")
            .ok()
            .and_then(|passwd| ids_of(&passwd, name))
            .unwrap_or((65534, 65534));
        Some(ServerUser { name, uid, gid })
    }

    /// The user's name, for messages.
    pub(crate) fn name(&self) -> &str {
        self.name
    }

    /// Makes `command` run as this user. Setting the uid also clears the supplementary groups
    /// (std calls `setgroups(0, NULL)` before `setuid`), so root's groups do not leak into the
    /// server.
    pub(crate) fn run_as<'a>(&self, command: &'a mut Command) -> &'a mut Command {
        command.uid(self.uid).gid(self.gid)
    }

    /// Hands `path` to this user.
    pub(crate) fn give(&self, path: &Path) -> Result<()> {
        chown(path, Some(self.uid), Some(self.gid))
            .with_context(|| format!("handing {} to the server user {}", path.display(), self.name))
    }

    /// Fails unless this user may pass through every directory above `dir` (the temporary
    /// directory's parents, e.g. `/tmp`).
    pub(crate) fn check_can_reach(&self, dir: &Path) -> Result<()> {
        for parent in dir.ancestors().skip(1) {
            let meta = parent.metadata().with_context(|| format!("reading {}", parent.display()))?;
            let search = if meta.uid() == self.uid {
                0o100
            } else if meta.gid() == self.gid {
                0o010
            } else {
                0o001
            };
            if meta.mode() & search == 0 {
                bail!(
                    "the PostgreSQL server runs as {} (initdb refuses root), which cannot enter {} (mode {:o}): \
                     set TMPDIR to a directory everyone may enter, such as /tmp",
                    self.name,
                    parent.display(),
                    meta.mode() & 0o7777
                );
            }
        }
        Ok(())
    }
}

/// The uid and gid of `user` in the text of `/etc/passwd`.
fn ids_of(passwd: &str, user: &str) -> Option<(u32, u32)> {
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        if fields.next()? != user {
            return None;
        }
        let _password = fields.next()?;
        Some((fields.next()?.parse().ok()?, fields.next()?.parse().ok()?))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_come_from_the_users_line() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65533:nobody:/nonexistent:/usr/sbin/nologin\n";
        assert_eq!(ids_of(passwd, "nobody"), Some((65534, 65533)));
        assert_eq!(ids_of(passwd, "postgres"), None);
        assert_eq!(ids_of("nobody:x:oops:1::/:/bin/false", "nobody"), None);
    }
}
