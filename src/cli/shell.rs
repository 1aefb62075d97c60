//! The line loop shared by the producer and consumer shells: prompt (only on a
//! terminal), read a line, run it, print the outcome or a one-line error, repeat
//! until `quit` or end of input.

use std::io::IsTerminal;

use async_std::io::prelude::BufReadExt;

use crate::error::Error;

/// What a command asks the loop to do next.
pub enum Next {
    /// Read the next line.
    Continue,
    /// Exit the shell.
    Quit,
}

/// A shell's commands.
pub trait Commands {
    /// The prompt shown on a terminal.
    fn prompt(&self) -> String;
    /// The help text.
    fn help(&self) -> &'static str;
    /// Runs one command line (already split: command word, then the rest).
    fn execute(
        &mut self,
        command: &str,
        rest: &str,
    ) -> impl std::future::Future<Output = Result<Next, Error>>;
}

/// Runs the loop until `quit` or end of input.
pub async fn run(mut commands: impl Commands) -> Result<(), Error> {
    let interactive = std::io::stdin().is_terminal();
    if interactive {
        println!("{}", commands.help());
    }
    let stdin = async_std::io::stdin();
    let mut reader = async_std::io::BufReader::new(stdin);
    let mut line = String::new();
    loop {
        if interactive {
            print!("{}", commands.prompt());
            use std::io::Write;
            let _ = std::io::stdout().flush();
        }
        line.clear();
        let read = reader
            .read_line(&mut line)
            .await
            .map_err(|e| Error::invalid(format!("cannot read standard input: {e}")))?;
        if read == 0 {
            return Ok(()); // end of input
        }
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let (command, rest) = trimmed
            .split_once(char::is_whitespace)
            .unwrap_or((trimmed, ""));
        let outcome = match command {
            "help" | "?" => {
                println!("{}", commands.help());
                Ok(Next::Continue)
            }
            "quit" | "exit" => Ok(Next::Quit),
            _ => commands.execute(command, rest.trim()).await,
        };
        match outcome {
            Ok(Next::Continue) => {}
            Ok(Next::Quit) => return Ok(()),
            Err(err) => println!("error: {err}"),
        }
        use std::io::Write;
        let _ = std::io::stdout().flush();
    }
}

/// Splits off the first word.
pub fn first_word(text: &str) -> (&str, &str) {
    let text = text.trim();
    match text.split_once(char::is_whitespace) {
        Some((word, rest)) => (word, rest.trim_start()),
        None => (text, ""),
    }
}

/// An error for a command used wrongly.
pub fn usage(text: &str) -> Error {
    Error::invalid(format!("usage: {text}"))
}

/// The error for a command the shell does not have.
pub fn unknown_command(command: &str) -> Error {
    Error::invalid(format!("unknown command '{command}' (type help)"))
}
