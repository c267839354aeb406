//! Load benchmark of /mutate (filled in below).
fn main() {}
