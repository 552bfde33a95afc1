use clap::Parser;

fn main() {
    let cli = match cutover::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => std::process::exit(cutover::app::usage_error(e, std::env::args())),
    };
    std::process::exit(cutover::app::run(cli));
}
