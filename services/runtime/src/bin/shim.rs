//! `berth-shim`: one per container (arrives next).

fn main() {}
