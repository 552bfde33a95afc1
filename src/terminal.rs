//! Text fit for a terminal: control characters escaped, so a string cutover did not write itself —
//! a profile's description, a name read from AWS, an AWS error message, a state item's reason, a
//! URL — can never retitle, clear or rewrite the terminal it is printed on
//! (`ESC]0;…BEL`, `ESC[2J`, a carriage return over a line).
//!
//! Every text that leaves the process goes through [`clean`]: the result on stdout, the progress
//! lines and errors on stderr. The only escape sequences it lets through are the four colours
//! cutover writes itself (SGR 0, 31, 32, 33: reset, red, green, yellow) — cosmetic, never moving
//! the cursor or hiding text. A string that must stay on one line (a reason, a holder, an AWS
//! message inside a sentence) goes through [`one_line`] where it is put into the text, so a
//! newline in it cannot forge a line of cutover's own. JSON output needs neither: serde escapes
//! every control character. A leaf: it names nothing else of cutover.

use std::borrow::Cow;

/// The escape sequences cutover writes itself: its colours.
const OWN: [&str; 4] = ["\u{1b}[0m", "\u{1b}[31m", "\u{1b}[32m", "\u{1b}[33m"];

/// `text` with every control character escaped (`\x1b`, `\x07`, `\r`, `\u{9b}`) except newlines,
/// tabs and cutover's own colours.
pub fn clean(text: &str) -> Cow<'_, str> {
    escape(text, false)
}

/// `text` with every control character escaped, newlines and tabs too: one line, whatever it holds.
pub fn one_line(text: &str) -> Cow<'_, str> {
    escape(text, true)
}

fn escape(text: &str, single: bool) -> Cow<'_, str> {
    let keep = |c: char| !c.is_control() || (!single && (c == '\n' || c == '\t'));
    if text.chars().all(keep) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if !single
            && c == '\u{1b}'
            && let Some(own) = OWN.iter().find(|s| rest.starts_with(**s))
        {
            out.push_str(own);
            rest = &rest[own.len()..];
            continue;
        }
        if keep(c) {
            out.push(c);
        } else {
            match c {
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                c if (c as u32) < 0x80 => out.push_str(&format!("\\x{:02x}", c as u32)),
                c => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            }
        }
        rest = &rest[c.len_utf8()..];
    }
    Cow::Owned(out)
}

/// Moves the cursor home and clears the screen (`status --watch` redrawing a terminal): the one
/// other sequence cutover writes, never part of a text it prints.
pub fn home_and_clear() {
    use std::io::Write;
    let _ = std::io::stdout().lock().write_all(b"\x1b[H\x1b[2J");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hostile_string_cannot_retitle_or_clear_the_terminal() {
        let hostile = "myapp\u{1b}]0;pwned\u{7}\u{1b}[2J\rgone\u{9b}31m";
        assert_eq!(clean(hostile), "myapp\\x1b]0;pwned\\x07\\x1b[2J\\rgone\\u{9b}31m");
        assert_eq!(one_line("a\nb\tc"), "a\\nb\\tc");
        assert_eq!(clean("a\nb\tc"), "a\nb\tc");
    }

    #[test]
    fn cutovers_own_colours_pass_and_plain_text_is_not_copied() {
        let own = "\u{1b}[32mPASS\u{1b}[0m \u{1b}[31mFAIL\u{1b}[0m";
        assert_eq!(clean(own), own);
        assert_eq!(one_line(own), "\\x1b[32mPASS\\x1b[0m \\x1b[31mFAIL\\x1b[0m");
        assert!(matches!(clean("plain ünïcode"), Cow::Borrowed(_)));
        // A colour is kept, a sequence that merely starts like one is not.
        assert_eq!(clean("\u{1b}[3"), "\\x1b[3");
        assert_eq!(clean("\u{1b}[8m"), "\\x1b[8m");
    }
}
