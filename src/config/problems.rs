//! Collects every configuration problem, each with the field path it is about, so `authgate
//! check` can report them all at once instead of one per run.

use std::fmt;

/// One problem: the field (`apps[1].origin.url`) and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted path of the field, e.g. `apps[0].routes[2].regex`.
    pub field: String,
    /// What is wrong, in words an operator can act on.
    pub message: String,
    /// The line of the configuration file it is about, when known.
    pub line: Option<usize>,
}

/// Every problem found in one configuration.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Problems(pub Vec<Problem>);

impl Problems {
    /// Records a problem with `field`.
    pub fn add(&mut self, field: &str, message: impl Into<String>) {
        self.0.push(Problem {
            field: field.to_string(),
            message: message.into(),
            line: None,
        });
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok(value)` when nothing was recorded, else every problem.
    pub fn into_result<T>(self, value: T) -> Result<T, Problems> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(self)
        }
    }
}

/// Compiles each entry of a list section whose entries have unique ids (`jwt_issuers`,
/// `oidc_providers`), reporting problems under `{section}[N]` and repeated ids under
/// `{section}[N].id`.
pub fn compile_list<F, T>(
    files: Vec<F>,
    section: &str,
    id: impl Fn(&F) -> String,
    mut compile: impl FnMut(F, &str, &mut Problems) -> Option<T>,
    problems: &mut Problems,
) -> Vec<T> {
    let mut ids = std::collections::HashSet::new();
    let mut out = Vec::new();
    for (i, file) in files.into_iter().enumerate() {
        let at = format!("{section}[{i}]");
        let this = id(&file);
        if !ids.insert(this.clone()) {
            problems.add(
                &format!("{at}.id"),
                format!("`{this}` is used by another entry"),
            );
        }
        if let Some(compiled) = compile(file, &at, problems) {
            out.push(compiled);
        }
    }
    out
}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for problem in &self.0 {
            match problem.line {
                Some(line) => writeln!(f, "{} (line {line}): {}", problem.field, problem.message)?,
                None => writeln!(f, "{}: {}", problem.field, problem.message)?,
            }
        }
        Ok(())
    }
}

impl std::error::Error for Problems {}
