use clap::Parser;

fn main() {
    // Started by the Lambda runtime (which passes no arguments): serve invocations.
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() && std::env::args_os().len() == 1 {
        std::process::exit(cutover::lambda::serve());
    }
    let cli = match cutover::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => std::process::exit(cutover::app::usage_error(e, std::env::args())),
    };
    std::process::exit(cutover::app::run(cli));
}
