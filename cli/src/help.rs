//! Global options shown once. clap repeats every `global = true` option in each
//! subcommand's help; here each subcommand gets hidden copies of them instead (clap
//! propagates a global option only to a subcommand without one of that id, and the
//! copies, global too, carry values up as the originals do) and one line pointing to
//! `berth --help`.

use clap::{Arg, Command, CommandFactory};

use crate::Cli;

/// The line under every subcommand's help.
pub const NOTE: &str = "Global options (-n/--namespace, --format, --state, --timeout): see berth --help";

/// `berth`'s command, global options listed only at the top.
pub fn command() -> Command {
    let root = Cli::command();
    let globals: Vec<Arg> = root.get_arguments().filter(|a| a.is_global_set()).cloned().collect();
    hide_in_subcommands(root, &globals)
}

fn hide_in_subcommands(mut cmd: Command, globals: &[Arg]) -> Command {
    let names: Vec<String> = cmd.get_subcommands().map(|s| s.get_name().to_string()).collect();
    for name in names {
        cmd = cmd.mut_subcommand(name, |mut sc| {
            for a in globals {
                sc = sc.arg(a.clone().hide(true));
            }
            hide_in_subcommands(sc.after_help(NOTE), globals)
        });
    }
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    fn help(path: &[&str]) -> String {
        let mut cmd = command();
        cmd.build();
        let mut at = &mut cmd;
        for p in path {
            at = at.find_subcommand_mut(p).expect("subcommand");
        }
        at.render_help().to_string()
    }

    #[test]
    fn globals_once_at_the_top() {
        let top = help(&[]);
        assert!(top.contains("--namespace <") && top.contains("--format <"), "{top}");
        for path in [&["version"][..], &["tasks", "ls"], &["images", "pull"], &["run"]] {
            let h = help(path);
            assert!(!h.contains("--namespace <") && !h.contains("--timeout <"), "{path:?}: {h}");
            assert!(h.contains(NOTE), "{path:?}: {h}");
        }
    }

    #[test]
    fn globals_still_parse_after_a_subcommand() {
        let m = command().try_get_matches_from(["berth", "tasks", "ls", "-n", "x", "--format", "json"]);
        let cli = <Cli as clap::FromArgMatches>::from_arg_matches(&m.expect("parse")).expect("cli");
        assert_eq!(cli.namespace, "x");
        assert!(matches!(cli.format, crate::output::Format::Json));
        let m = command().try_get_matches_from(["berth", "-n", "y", "tasks", "ls"]).expect("parse");
        assert_eq!(<Cli as clap::FromArgMatches>::from_arg_matches(&m).expect("cli").namespace, "y");
    }
}
