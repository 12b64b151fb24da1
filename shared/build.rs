//! Rebuilds when a migration is added: `embed_migrations!` reads `../migrations` at compile time,
//! but cargo only tracks the files it included, so a new migration directory alone would leave
//! the binaries without it (seen: `worker migrate` skipping a new migration after `cargo build`).
fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
