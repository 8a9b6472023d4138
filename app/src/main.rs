//! `ferry-app`: the desktop app (work in progress).
fn main() {}
