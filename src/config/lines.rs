//! Where each field of a configuration file is written: the line of every key and list entry,
//! by field path (`apps[0].origin.url`), so a problem can point at its line.
//!
//! serde reports the first error's position only; this reads the file once with a YAML event
//! parser (yaml-rust2) that reports where every node starts.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// Field path → 1-based line.
#[derive(Debug, Default)]
pub struct Lines(HashMap<String, usize>);

impl Lines {
    /// The lines of `text`'s fields; empty if the text is not YAML (the parser that reads the
    /// configuration reports that).
    pub fn of(text: &str) -> Lines {
        let mut walk = Walk::default();
        let _ = Parser::new_from_str(text).load(&mut walk, false);
        Lines(walk.lines)
    }

    /// True when `field` itself is written in the file.
    pub fn written(&self, field: &str) -> bool {
        self.0.contains_key(field)
    }

    /// The line of `field`, or of its nearest written ancestor (a default that was not
    /// written points at the section that would hold it).
    pub fn line(&self, field: &str) -> Option<usize> {
        let mut at = field;
        loop {
            if let Some(line) = self.0.get(at) {
                return Some(*line);
            }
            let cut = at.rfind(['.', '['])?;
            at = &at[..cut];
        }
    }
}

enum Frame {
    Map { path: String, key: Option<String> },
    Seq { path: String, next: usize },
}

#[derive(Default)]
struct Walk {
    stack: Vec<Frame>,
    lines: HashMap<String, usize>,
}

impl Walk {
    /// The path of the node starting now (a value or list entry), noting its line; `None`
    /// when the node is a mapping key.
    fn node_path(&mut self, line: usize) -> Option<String> {
        match self.stack.last_mut() {
            None => Some(String::new()),
            Some(Frame::Map { key: None, .. }) => None,
            Some(Frame::Map {
                path,
                key: Some(key),
            }) => {
                let at = join(path, key);
                self.lines.entry(at.clone()).or_insert(line);
                Some(at)
            }
            Some(Frame::Seq { path, next }) => {
                let at = format!("{path}[{next}]");
                *next += 1;
                self.lines.insert(at.clone(), line);
                Some(at)
            }
        }
    }

    /// A value has ended: its mapping waits for the next key.
    fn value_done(&mut self) {
        if let Some(Frame::Map { key, .. }) = self.stack.last_mut() {
            *key = None;
        }
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

impl MarkedEventReceiver for Walk {
    fn on_event(&mut self, event: Event, mark: Marker) {
        let line = mark.line();
        match event {
            Event::Scalar(text, ..) => match self.node_path(line) {
                // A key: remember it and where it is written.
                None => {
                    if let Some(Frame::Map { path, key }) = self.stack.last_mut() {
                        self.lines.insert(join(path, &text), line);
                        *key = Some(text);
                    }
                }
                Some(_) => self.value_done(),
            },
            Event::Alias(_) if self.node_path(line).is_some() => self.value_done(),
            Event::MappingStart(..) => {
                let path = self.node_path(line).unwrap_or_default();
                self.stack.push(Frame::Map { path, key: None });
            }
            Event::SequenceStart(..) => {
                let path = self.node_path(line).unwrap_or_default();
                self.stack.push(Frame::Seq { path, next: 0 });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
                self.value_done();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_list_entries_have_their_lines() {
        let text = "listen:\n  - address: 127.0.0.1:8080\n    h2c: true\nadmin: {listen: '1:2'}\napps:\n  - id: a\n    origin:\n      url: http://x\n  - {id: b, host: b.test}\n";
        let lines = Lines::of(text);
        assert_eq!(lines.line("listen"), Some(1));
        assert_eq!(lines.line("listen[0]"), Some(2));
        assert_eq!(lines.line("listen[0].h2c"), Some(3));
        assert_eq!(lines.line("admin.listen"), Some(4));
        assert_eq!(lines.line("apps[0].origin.url"), Some(8));
        assert_eq!(lines.line("apps[1].host"), Some(9));
        // Not written: the nearest ancestor that is.
        assert_eq!(lines.line("apps[0].origin.verify_tls"), Some(7));
        assert_eq!(lines.line("limits.keepalive_timeout"), None);
    }

    #[test]
    fn text_that_is_not_yaml_has_no_lines() {
        assert_eq!(Lines::of("a: [").line("a"), Some(1));
        assert_eq!(Lines::of("{{{").line("x"), None);
    }
}
