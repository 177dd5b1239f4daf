// The server allocates and frees many small, short-lived values per request
// (JSON bodies, audit records, Cedar contexts); mimalloc does that with less
// CPU than the system allocator (docs/benchmarks.md, P4).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    bridle_cli::run()
}
