//! Which device and file system a benchmark directory lives on, so a report can say what disk
//! its fsync numbers describe (and warn when they describe none, as on tmpfs).
//!
//! Read from `/proc/self/mountinfo` (Linux); the parsing is pure and tested on sample lines.

use std::path::{Path, PathBuf};

/// A mount: the device (or other source), its file system type and where it is mounted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    pub source: String,
    pub fs_type: String,
    pub mount_point: PathBuf,
}

impl Mount {
    /// Whether the file system keeps its data in memory, so fsync reaches no disk.
    pub fn is_in_memory(&self) -> bool {
        matches!(self.fs_type.as_str(), "tmpfs" | "ramfs")
    }
}

/// The mount holding `path` (made absolute and free of symlinks first); `None` if `path` does
/// not exist or the mount table cannot be read.
pub fn mount_of(path: &Path) -> Option<Mount> {
    let path = path.canonicalize().ok()?;
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    mount_in(&info, &path)
}

/// The mount holding the absolute `path` according to `mountinfo` (the text of
/// `/proc/self/mountinfo`): the longest mount point that is a prefix of `path`, the last one
/// listed when several mounts share it (it hides the earlier ones).
pub fn mount_in(mountinfo: &str, path: &Path) -> Option<Mount> {
    let mut found: Option<Mount> = None;
    for line in mountinfo.lines() {
        // "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue":
        // the mount point is the 5th field; after " - " come the type and the source.
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let Some(mount_point) = left.split(' ').nth(4).map(unescape_field) else {
            continue;
        };
        let mut right = right.split(' ');
        let (Some(fs_type), Some(source)) = (right.next(), right.next()) else {
            continue;
        };
        let mount_point = PathBuf::from(mount_point);
        let longer = found.as_ref().is_none_or(|previous| {
            mount_point.as_os_str().len() >= previous.mount_point.as_os_str().len()
        });
        if path.starts_with(&mount_point) && longer {
            found = Some(Mount {
                source: unescape_field(source),
                fs_type: unescape_field(fs_type),
                mount_point,
            });
        }
    }
    found
}

/// mountinfo writes space, tab, newline and backslash in its fields as `\` and three octal
/// digits; anything else after a backslash is kept as it is.
fn unescape_field(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut rest = field;
    while let Some(at) = rest.find('\\') {
        out.push_str(&rest[..at]);
        let code = rest
            .get(at + 1..at + 4)
            .filter(|digits| digits.bytes().all(|b| (b'0'..=b'7').contains(&b)))
            .and_then(|digits| u8::from_str_radix(digits, 8).ok());
        match code {
            Some(byte) => {
                out.push(char::from(byte));
                rest = &rest[at + 4..];
            }
            None => {
                out.push('\\');
                rest = &rest[at + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
22 1 252:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
23 22 0:21 / /tmp rw,nosuid shared:2 - tmpfs tmpfs rw,size=1024k
24 22 8:1 / /mnt/my\\040disk rw - xfs /dev/sdb1 rw
25 24 0:30 / /mnt/my\\040disk rw - tmpfs overmounted rw
";

    #[test]
    fn picks_the_longest_and_last_mount_point_that_holds_the_path() {
        // Proves prefix matching by path components, longest-wins and last-listed-wins.
        let mount = |path: &str| mount_in(SAMPLE, Path::new(path)).expect("a mount");
        assert_eq!(mount("/work/main/target").source, "/dev/vda");
        assert_eq!(mount("/tmp/x").fs_type, "tmpfs");
        assert!(mount("/tmp/x").is_in_memory());
        assert_eq!(mount("/tmpfoo").source, "/dev/vda");
        assert_eq!(mount("/mnt/my disk/a").source, "overmounted");
        assert!(!mount("/work").is_in_memory());
    }

    #[test]
    fn unescapes_octal_and_keeps_stray_backslashes() {
        // Proves \NNN octal escapes decode and malformed ones pass through unchanged.
        assert_eq!(unescape_field("a\\040b\\011c\\134d"), "a b\tc\\d");
        assert_eq!(unescape_field("end\\"), "end\\");
        assert_eq!(unescape_field("x\\09y"), "x\\09y");
        assert_eq!(mount_in("garbage line\n", Path::new("/")), None);
    }
}
