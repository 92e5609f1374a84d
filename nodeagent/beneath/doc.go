// Package beneath opens and stats root-relative paths so that nothing
// outside the data root is ever reached: no "..", no absolute path, and no
// symlink on the way (a symlinked directory inside the root that points
// outside, or elsewhere inside, is refused, because rsync would follow it on
// the sending side and the peer would get a real directory).
//
// Linux uses openat2(2) with RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS; FreeBSD
// walks the path one component at a time with O_NOFOLLOW|O_RESOLVE_BENEATH
// (its O_RESOLVE_BENEATH alone would follow symlinks that stay inside).
// The final component may itself be a symlink when the caller asks for an
// lstat: links are data and replicate as links.
package beneath
