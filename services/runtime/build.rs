//! `berth-shim` is linked as a fixed-address executable (not PIE): one runs per container,
//! and a PIE's relocated read-only data (`.data.rel.ro`, about 48 KB here) is written at
//! every start, so each shim kept a private copy; fixed addresses leave those pages clean
//! and shared between every shim. (containerd's Go shim is not PIE either.)

fn main() {
    println!("cargo:rustc-link-arg-bin=berth-shim=-no-pie");
}
