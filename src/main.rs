use clap::Parser;

fn main() {
    let cli = cutover::cli::Cli::parse();
    std::process::exit(cutover::app::run(cli));
}
