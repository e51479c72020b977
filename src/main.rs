use std::process::ExitCode;

fn main() -> ExitCode {
    pipeline_export::cli::main()
}
