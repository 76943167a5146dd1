//! Files on disk.

use std::path::Path;

/// Copies the directory `from` with everything in it to `to` (created), as a crash of the
/// process writing `from` would leave it; panics on a failure, naming the path.
pub fn copy_dir(from: &Path, to: &Path) {
    let fail = |what: &str, path: &Path, e: std::io::Error| -> ! {
        panic!("copy_dir: {what} {}: {e}", path.display())
    };
    std::fs::create_dir_all(to).unwrap_or_else(|e| fail("creating", to, e));
    let entries = std::fs::read_dir(from).unwrap_or_else(|e| fail("listing", from, e));
    for entry in entries {
        let entry = entry.unwrap_or_else(|e| fail("listing", from, e));
        let path = entry.path();
        let target = to.join(entry.file_name());
        let kind = entry
            .file_type()
            .unwrap_or_else(|e| fail("reading", &path, e));
        if kind.is_dir() {
            copy_dir(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap_or_else(|e| fail("copying", &path, e));
        }
    }
}
