//! `drpair completions SHELL` and `drpair man DIR`: files generated from the command tree
//! itself, so they never disagree with it.

use crate::client::CliError;
use crate::command::{Cli, Command};
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
#[command(
    about = "Print the shell completion script of drpair",
    after_help = "Examples:\n  \
        drpair completions bash > /etc/bash_completion.d/drpair\n  \
        drpair completions zsh > \"${fpath[1]}/_drpair\"\n  \
        drpair completions fish > ~/.config/fish/completions/drpair.fish\n\n\
        The Debian package installs them for bash, zsh and fish."
)]
pub struct CompletionsArgs {
    /// The shell to complete for
    #[arg(value_enum)]
    shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
#[command(about = "Write the manual pages of drpair (section 1) into DIR")]
pub struct ManArgs {
    /// Where drpair.1 and one page per subcommand are written
    #[arg(value_name = "DIR")]
    dir: PathBuf,
}

/// `drpair completions` and `drpair man`: generated from the command definition itself, so they
/// never disagree with it.
pub fn write_help_files(command: &Command) -> Result<(), CliError> {
    use clap::CommandFactory;
    match command {
        Command::Completions(args) => {
            let mut script = Vec::new();
            clap_complete::generate(args.shell, &mut Cli::command(), "drpair", &mut script);
            std::io::Write::write_all(&mut std::io::stdout().lock(), &script)
                .map_err(|e| CliError::io("cannot write the completion script", e))
        }
        Command::Man(args) => std::fs::create_dir_all(&args.dir)
            .and_then(|()| clap_mangen::generate_to(Cli::command(), &args.dir))
            .map_err(|e| CliError::io(format!("cannot write manual pages into {}", args.dir.display()), e)),
        _ => unreachable!("only completions and man are written here"),
    }
}
