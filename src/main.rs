#![forbid(unsafe_code)]

use clap::Parser;

fn main() {
    // Started by the Lambda runtime (which passes no arguments): serve invocations.
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() && std::env::args_os().len() == 1 {
        std::process::exit(cutover::lambda::serve());
    }
    let cli = match cutover::cli::Cli::try_parse() {
        Ok(cli) => cli,
        // Arguments as the system gave them: one that is not UTF-8 is a usage error, not a panic.
        Err(e) => std::process::exit(cutover::app::usage_error(
            e,
            std::env::args_os().map(|a| a.to_string_lossy().into_owned()),
        )),
    };
    std::process::exit(cutover::app::run(cli));
}
