//! `arca`: the command-line client.

fn main() {
    std::process::exit(arca_cli::main());
}
