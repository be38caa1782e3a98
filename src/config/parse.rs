//! Reading a configuration file into its model with every problem reported at once.
//!
//! serde stops at the first field it cannot read. To report them all, a field that fails is
//! noted (in plain words, with its line and, for an unknown key, the key it was probably meant
//! to be), left out of the document, and the rest is read again — until it reads. What was
//! left out is remembered, so the semantic checks that follow do not also complain about it
//! (a list that lost its only entry is not "empty"). A file that reads the first time — the
//! usual case — is read exactly as serde reads it, once.

use serde_path_to_error::Segment;
use serde_yaml_ng::Value;

use super::lines::Lines;
use super::model::FileConfig;
use super::problems::{Problem, Problems};

/// More problems than this in one file: the rest are not looked for.
const MAX_PROBLEMS: usize = 100;

/// A file read as far as it could be.
#[derive(Debug)]
pub struct Parsed {
    /// The model, without the fields that could not be read.
    pub file: FileConfig,
    /// What was found while reading it.
    pub found: Findings,
}

/// What reading a file found: its problems, its lines, and what was left out.
#[derive(Debug)]
pub struct Findings {
    /// What could not be read.
    pub problems: Problems,
    /// Lines of the fields as written.
    pub lines: Lines,
    /// Fields (as written) left out so the rest could be read.
    left_out: Vec<String>,
    /// List entries left out: the list's path (as written) and each entry's written index.
    removed: Vec<(String, usize)>,
}

/// One step of a field path, with list indices as they are in the document being read.
#[derive(Debug, Clone)]
enum Step {
    Key(String),
    Index(usize),
}

/// Reads `text` (of a file in `config_dir`, whose relative paths are relative to it). `Err`
/// only when the text is not YAML at all.
pub fn read_in(text: &str, config_dir: Option<&std::path::Path>) -> Result<Parsed, Problems> {
    let mut parsed = super::secret::reading_in(config_dir, || read(text))?;
    if let Some(dir) = config_dir {
        super::paths::resolve(&mut parsed.file, dir, &parsed.found.lines);
    }
    Ok(parsed)
}

/// Reads `text`. `Err` only when the text is not YAML at all.
pub fn read(text: &str) -> Result<Parsed, Problems> {
    let lines = Lines::of(text);
    let mut parsed = Findings {
        problems: Problems::default(),
        lines,
        left_out: Vec::new(),
        removed: Vec::new(),
    };
    let mut document: Option<Value> = None;
    let mut current = text.to_string();
    loop {
        let reader = serde_yaml_ng::Deserializer::from_str(&current);
        let error = match serde_path_to_error::deserialize::<_, FileConfig>(reader) {
            Ok(file) => {
                return Ok(Parsed {
                    file,
                    found: parsed,
                })
            }
            Err(error) => error,
        };
        let steps = steps(error.path());
        let inner = error.into_inner();
        let value = match &mut document {
            Some(value) => value,
            None => match serde_yaml_ng::from_str::<Value>(text) {
                Ok(value) => document.insert(value),
                Err(syntax) => return Err(not_yaml(&syntax)),
            },
        };
        let Some(steps) = steps else {
            // A path serde could not name: report it and stop.
            parsed.add("(file)", plain(&bare_message(&inner)));
            return Err(parsed.problems);
        };
        let written = parsed.written(&steps);
        let message = bare_message(&inner);
        let leave_out = match classify(&message) {
            Found::Missing(name) => {
                let field = join(&written, &name);
                if !parsed.left_out.contains(&field) {
                    parsed.add(&field, format!("`{name}` is required here"));
                }
                steps.clone()
            }
            Found::Unknown { key, expected } => {
                let mut said = format!("unknown key `{key}`");
                if let Some(meant) = did_you_mean(&key, &expected) {
                    said.push_str(&format!("; did you mean `{meant}`?"));
                } else if !expected.is_empty() {
                    said.push_str(&format!(" (known here: {})", expected.join(", ")));
                }
                parsed.add(&written, said);
                steps.clone()
            }
            Found::Other => {
                parsed.add(&written, plain_for(&message, &written));
                steps.clone()
            }
        };
        if leave_out.is_empty()
            || parsed.problems.0.len() >= MAX_PROBLEMS
            || !parsed.leave_out(value, &leave_out)
        {
            return Err(parsed.problems);
        }
        current = match serde_yaml_ng::to_string(value) {
            Ok(text) => text,
            Err(_) => return Err(parsed.problems),
        };
    }
}

impl Findings {
    fn add(&mut self, field: &str, message: String) {
        let line = self.lines.line(field);
        self.problems.0.push(Problem {
            field: field.to_string(),
            message,
            line,
        });
    }

    /// The path as written in the file: list indices counted before entries were left out.
    fn written(&self, steps: &[Step]) -> String {
        let mut at = String::new();
        for step in steps {
            match step {
                Step::Key(key) => at = join(&at, key),
                Step::Index(i) => {
                    let written = self.written_index(&at, *i);
                    at = format!("{at}[{written}]");
                }
            }
        }
        at
    }

    fn written_index(&self, list: &str, now: usize) -> usize {
        let mut gone: Vec<usize> = self
            .removed
            .iter()
            .filter(|(path, _)| path == list)
            .map(|(_, i)| *i)
            .collect();
        gone.sort_unstable();
        let mut index = now;
        for g in gone {
            if g <= index {
                index += 1;
            }
        }
        index
    }

    /// Removes the node at `steps` from `document`; false when there is nothing to remove.
    fn leave_out(&mut self, document: &mut Value, steps: &[Step]) -> bool {
        let Some((last, parents)) = steps.split_last() else {
            return false;
        };
        let mut node = &mut *document;
        for step in parents {
            let next = match (step, node) {
                (Step::Key(key), Value::Mapping(map)) => map.get_mut(key.as_str()),
                (Step::Index(i), Value::Sequence(list)) => list.get_mut(*i),
                _ => None,
            };
            match next {
                Some(next) => node = next,
                None => return false,
            }
        }
        let written = self.written(steps);
        let removed = match (last, node) {
            (Step::Key(key), Value::Mapping(map)) => map.remove(key.as_str()).is_some(),
            (Step::Index(i), Value::Sequence(list)) if *i < list.len() => {
                list.remove(*i);
                let list_path = self.written(parents);
                let index = self.written_index(&list_path, *i);
                self.removed.push((list_path, index));
                true
            }
            _ => false,
        };
        if removed {
            self.left_out.push(written);
        }
        removed
    }

    /// The field of a problem found after reading (`apps[2].routes[0]`), as written in the
    /// file.
    pub fn as_written(&self, field: &str) -> String {
        match parse_field(field) {
            Some(steps) => self.written(&steps),
            None => field.to_string(),
        }
    }

    /// True when `field` (as written) is, contains or is inside a field that was left out:
    /// a later check would only repeat the problem already reported.
    pub fn overlaps_left_out(&self, field: &str) -> bool {
        let within = |inner: &str, outer: &str| {
            inner == outer
                || inner
                    .strip_prefix(outer)
                    .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
        };
        self.left_out
            .iter()
            .any(|gone| within(field, gone) || within(gone, field))
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn steps(path: &serde_path_to_error::Path) -> Option<Vec<Step>> {
    let mut steps = Vec::new();
    for segment in path.iter() {
        match segment {
            Segment::Map { key } => steps.push(Step::Key(key.clone())),
            Segment::Seq { index } => steps.push(Step::Index(*index)),
            Segment::Enum { .. } => {}
            Segment::Unknown => return None,
        }
    }
    Some(steps)
}

/// `apps[2].routes[0].regex` → steps; `None` for what is not a field path (`(file)`).
fn parse_field(field: &str) -> Option<Vec<Step>> {
    let mut steps = Vec::new();
    for part in field.split('.') {
        let (key, mut indices) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if key.is_empty() || key.starts_with('(') {
            return None;
        }
        steps.push(Step::Key(key.to_string()));
        while let Some(rest) = indices.strip_prefix('[') {
            let end = rest.find(']')?;
            steps.push(Step::Index(rest[..end].parse().ok()?));
            indices = &rest[end + 1..];
        }
    }
    Some(steps)
}

/// The error's message without the YAML reader's own path prefix and position suffix (the
/// problem names its field and line itself).
fn bare_message(error: &serde_yaml_ng::Error) -> String {
    let mut message = error.to_string();
    if let Some(at) = error.location() {
        let suffix = format!(" at line {} column {}", at.line(), at.column());
        if let Some(stripped) = message.strip_suffix(&suffix) {
            message = stripped.to_string();
        }
    }
    if let Some((prefix, rest)) = message.split_once(": ") {
        // The reader's own path, counted in the document as re-read (so not always `written`).
        let looks_like_path = !prefix.is_empty()
            && prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-.[]".contains(c));
        if looks_like_path {
            message = rest.to_string();
        }
    }
    message
}

fn not_yaml(error: &serde_yaml_ng::Error) -> Problems {
    let mut problems = Problems::default();
    let message = bare_message(error);
    problems.0.push(Problem {
        field: "(file)".into(),
        message: format!("not valid YAML: {message}"),
        line: error.location().map(|at| at.line()),
    });
    problems
}

enum Found {
    Missing(String),
    Unknown { key: String, expected: Vec<String> },
    Other,
}

fn classify(message: &str) -> Found {
    if let Some(rest) = message.strip_prefix("missing field `") {
        if let Some(name) = rest.split('`').next() {
            return Found::Missing(name.to_string());
        }
    }
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let mut parts = rest.splitn(2, '`');
        let key = parts.next().unwrap_or_default().to_string();
        let expected = parts.next().map(backticked).unwrap_or_default();
        return Found::Unknown { key, expected };
    }
    Found::Other
}

/// Every `name` between backticks.
fn backticked(text: &str) -> Vec<String> {
    text.split('`')
        .enumerate()
        .filter(|(i, _)| i % 2 == 1)
        .map(|(_, name)| name.to_string())
        .collect()
}

/// The known name `written` was most likely meant to be, if one is close.
pub fn did_you_mean(written: &str, known: &[String]) -> Option<String> {
    let norm = |s: &str| s.to_ascii_lowercase().replace('-', "_");
    let written = norm(written);
    known
        .iter()
        .map(|k| {
            let n = norm(k);
            (
                strsim::jaro_winkler(&written, &n),
                strsim::levenshtein(&written, &n),
                k,
            )
        })
        .filter(|(similar, distance, _)| *similar >= 0.8 || *distance <= 2)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, _, k)| k.clone())
}

/// Fields whose values are secrets: a problem with one never repeats what was written.
fn is_secret_field(field: &str) -> bool {
    let last = field.rsplit('.').next().unwrap_or(field);
    ["secret", "token", "password", "cookie_keys"]
        .iter()
        .any(|s| last.contains(s))
}

fn plain_for(message: &str, field: &str) -> String {
    if is_secret_field(field) {
        if let Some(rest) = message
            .strip_prefix("invalid type: ")
            .or_else(|| message.strip_prefix("invalid value: "))
        {
            if let Some((found, expected)) = rest.rsplit_once(", expected ") {
                let kind = found.split([' ', '`', '"']).next().unwrap_or("value");
                return format!(
                    "expected {}, found {}",
                    expected_words(expected),
                    found_kind(kind)
                );
            }
        }
    }
    plain(message)
}

/// serde's message in the words of someone editing a YAML file.
fn plain(message: &str) -> String {
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = message.strip_prefix(prefix) {
            if let Some((found, expected)) = rest.rsplit_once(", expected ") {
                return format!(
                    "expected {}, found {}",
                    expected_words(expected),
                    found_words(found)
                );
            }
        }
    }
    if let Some(rest) = message.strip_prefix("unknown variant `") {
        let mut parts = rest.splitn(2, '`');
        let written = parts.next().unwrap_or_default();
        let known = parts.next().map(backticked).unwrap_or_default();
        let mut said = format!("`{written}` is not one of {}", quoted(&known));
        if let Some(meant) = did_you_mean(written, &known) {
            said.push_str(&format!("; did you mean `{meant}`?"));
        }
        return said;
    }
    if message.starts_with("data did not match any variant of untagged enum") {
        return "this value is not in any form this field accepts".into();
    }
    message.to_string()
}

fn quoted(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn expected_words(expected: &str) -> String {
    let e = expected.trim();
    match e {
        "u8" | "u16" | "u32" | "u64" | "usize" | "i8" | "i16" | "i32" | "i64" | "isize"
        | "an integer" => "a whole number".into(),
        "f32" | "f64" | "a float" => "a number".into(),
        "a boolean" | "bool" => "true or false".into(),
        "a string" | "string" | "a borrowed string" => "text".into(),
        "a sequence" => "a list".into(),
        "a map" => "a mapping (key: value lines)".into(),
        _ if e.starts_with("struct ") => "a mapping (key: value lines)".into(),
        _ if e.starts_with("a sequence") => "a list".into(),
        _ => e.to_string(),
    }
}

fn found_kind(kind: &str) -> String {
    match kind {
        "string" => "text".into(),
        "integer" | "floating" => "a number".into(),
        "boolean" => "true or false".into(),
        "sequence" => "a list".into(),
        "map" => "a mapping".into(),
        "unit" => "nothing".into(),
        other => other.to_string(),
    }
}

fn found_words(found: &str) -> String {
    let f = found.trim();
    if let Some(text) = f.strip_prefix("string ") {
        return format!("the text {text}");
    }
    for prefix in ["integer ", "floating point "] {
        if let Some(n) = f.strip_prefix(prefix) {
            return format!("the number {}", n.trim_matches('`'));
        }
    }
    if let Some(b) = f.strip_prefix("boolean ") {
        return format!("`{}`", b.trim_matches('`'));
    }
    match f {
        "sequence" => "a list".into(),
        "map" => "a mapping".into(),
        "unit value" => "nothing (an empty value)".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str) -> Vec<String> {
        match read(text) {
            Ok(parsed) => parsed
                .found
                .problems
                .0
                .iter()
                .map(|p| format!("{:?} {}: {}", p.line, p.field, p.message))
                .collect(),
            Err(problems) => problems
                .0
                .iter()
                .map(|p| format!("{:?} {}: {}", p.line, p.field, p.message))
                .collect(),
        }
    }

    #[test]
    fn every_typo_and_wrong_type_is_reported_in_one_read() {
        let text = "\
listen:
  - address: 127.0.0.1:8080
    h2cc: true
limits:
  max_request_header_bytes: lots
server: {drain_timeout: 5, threads: many}
apps:
  - id: a
    host: a.test
    origin: 'http://127.0.0.1:3000'
    rules: []
  - id: b
    host: b.test
    origin: {url: http://127.0.0.1:3001/, verify_tls: maybe}
";
        let got = problems(text);
        assert_eq!(
            got,
            vec![
                "Some(3) listen[0].h2cc: unknown key `h2cc`; did you mean `h2c`?",
                "Some(5) limits.max_request_header_bytes: expected a whole number, found the text \"lots\"",
                "Some(6) server.threads: expected a whole number, found the text \"many\"",
                "Some(10) apps[0].origin: expected a mapping (key: value lines), found the text \"http://127.0.0.1:3000\"",
                "Some(11) apps[0].rules: unknown key `rules`; did you mean `routes`?",
                "Some(14) apps[1].origin.verify_tls: expected true or false, found the text \"maybe\"",
            ],
            "{got:#?}"
        );
    }

    #[test]
    fn a_problem_after_a_left_out_list_entry_names_the_entry_as_written() {
        // apps[0] loses its required `id`... then apps[1]'s problem keeps its own index.
        let text = "apps:\n  - {host: a.test, origin: {url: 'http://x/'}}\n  - {id: b, host: b.test, origin: {url: 'http://x/', connect_timeout: [1]}}\n";
        let got = problems(text);
        assert_eq!(got.len(), 2, "{got:#?}");
        assert!(
            got[0].starts_with("Some(2) apps[0].id: `id` is required here"),
            "{got:#?}"
        );
        assert!(
            got[1].starts_with("Some(3) apps[1].origin.connect_timeout:"),
            "{got:#?}"
        );
    }

    #[test]
    fn secrets_are_never_repeated_back() {
        let text = "oidc_providers:\n  - {id: p, issuer: 'https://id.test', client_id: c, client_secret: [hunter2]}\n";
        let got = problems(text).join("\n");
        assert!(!got.contains("hunter2"), "{got}");
    }

    #[test]
    fn text_that_is_not_yaml_is_one_problem_with_its_line() {
        let got = problems("listen:\n  - address: [\n");
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(got[0].contains("(file): not valid YAML"), "{got:?}");
    }

    #[test]
    fn suggestions_are_only_for_close_names() {
        let known: Vec<String> = ["routes", "origin", "host"].map(String::from).to_vec();
        assert_eq!(did_you_mean("rutes", &known).as_deref(), Some("routes"));
        assert_eq!(did_you_mean("Origin", &known).as_deref(), Some("origin"));
        assert_eq!(did_you_mean("frobnicate", &known), None);
    }
}
