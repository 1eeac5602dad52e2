//! Command templates that cannot be injected.
//!
//! A template is an argv (or, as Argon sends it, one command string, split once with shell-like
//! quoting by `shlex`) whose arguments hold placeholders `{{inputs.x}}`, `{{outputs.x}}`,
//! `{{configs.x}}`. It is parsed into arguments *before any value is seen*; a value then fills its
//! placeholder inside one argument and is never parsed again, so `; rm -rf /`, `$(…)` and
//! backticks arrive as literal text. The container gets the argv, no shell.
//!
//! Saving refuses: a placeholder inside the script of `sh -c` / `bash -c` (a shell would parse the
//! value: pass it as a positional parameter instead), a placeholder with no parameter entry, and a
//! `secret` placeholder (secrets go only into the environment).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{CoreError, Result};

/// Where a parameter's value goes: `inputs`, `outputs` or `configs`.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
    ts_rs::TS,
)]
#[serde(rename_all = "camelCase")]
pub enum ParamKind {
    Input,
    Output,
    Config,
}

impl ParamKind {
    pub fn placeholder_word(self) -> &'static str {
        match self {
            ParamKind::Input => "inputs",
            ParamKind::Output => "outputs",
            ParamKind::Config => "configs",
        }
    }

    fn from_word(w: &str) -> Option<ParamKind> {
        match w {
            "inputs" => Some(ParamKind::Input),
            "outputs" => Some(ParamKind::Output),
            "configs" => Some(ParamKind::Config),
            _ => None,
        }
    }
}

/// A piece of an argument: literal text, or a placeholder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Text(String),
    Slot { kind: ParamKind, name: String },
}

/// A parsed template: per argument, its pieces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub args: Vec<Vec<Piece>>,
}

fn bad(reason: impl Into<String>) -> CoreError {
    CoreError::InvalidInput {
        what: "command template".into(),
        reason: reason.into(),
    }
}

fn valid_param_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 64
        && n.as_bytes()[0].is_ascii_alphabetic()
        && n.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

/// One argument's pieces. `{{` opens a placeholder that must close with `}}` and name
/// `inputs|outputs|configs.NAME`; anything else between braces is refused (no other syntax).
pub fn parse_arg(arg: &str) -> Result<Vec<Piece>> {
    let mut out = Vec::new();
    let mut rest = arg;
    while let Some(i) = rest.find("{{") {
        if i > 0 {
            out.push(Piece::Text(rest[..i].to_string()));
        }
        let after = &rest[i + 2..];
        let end = after.find("}}").ok_or_else(|| {
            bad(format!(
                "\"{arg}\" opens a placeholder with {{{{ that never closes"
            ))
        })?;
        let inner = after[..end].trim();
        let (w, name) = inner.split_once('.').ok_or_else(|| {
            bad(format!("{{{{{inner}}}}} is not a placeholder: write {{{{inputs.NAME}}}}, {{{{outputs.NAME}}}} or {{{{configs.NAME}}}}"))
        })?;
        let kind = ParamKind::from_word(w).ok_or_else(|| {
            bad(format!(
                "{{{{{inner}}}}}: \"{w}\" is not inputs, outputs or configs"
            ))
        })?;
        if !valid_param_name(name) {
            return Err(bad(format!(
                "{{{{{inner}}}}}: \"{name}\" is not a parameter name (a letter, then letters, digits and _)"
            )));
        }
        out.push(Piece::Slot {
            kind,
            name: name.to_string(),
        });
        rest = &after[end + 2..];
    }
    if !rest.is_empty() {
        out.push(Piece::Text(rest.to_string()));
    }
    if out.is_empty() {
        out.push(Piece::Text(String::new()));
    }
    Ok(out)
}

/// Splits one command string into arguments once, with shell-like quoting (Argon's form).
pub fn split_command(command: &str) -> Result<Vec<String>> {
    if command.contains('\0') {
        return Err(bad("it holds a NUL character"));
    }
    let v = shlex::split(command).ok_or_else(|| bad("its quotes do not balance"))?;
    if v.is_empty() {
        return Err(bad("it is empty"));
    }
    Ok(v)
}

const SHELLS: &[&str] = &["sh", "bash", "dash", "zsh", "ash", "ksh", "busybox"];

/// Whether `argv[i]` is the script of a shell's `-c` (`sh -c SCRIPT`, `bash -lc SCRIPT`,
/// `/bin/sh -e -c SCRIPT`, `busybox sh -c SCRIPT`, `env … sh -c SCRIPT`).
fn shell_script_index(argv: &[String]) -> Option<usize> {
    let base = |s: &str| s.rsplit('/').next().unwrap_or(s).to_string();
    let mut i = 0;
    // Skip wrappers that run their arguments as a command.
    while i < argv.len()
        && matches!(
            base(&argv[i]).as_str(),
            "env" | "exec" | "nice" | "nohup" | "timeout" | "stdbuf"
        )
    {
        i += 1;
        while i < argv.len()
            && (argv[i].starts_with('-') || argv[i].contains('=') || argv[i].parse::<f64>().is_ok())
        {
            i += 1;
        }
    }
    if i < argv.len() && base(&argv[i]) == "busybox" {
        i += 1;
    }
    if i >= argv.len() || !SHELLS.contains(&base(&argv[i]).as_str()) {
        return None;
    }
    let mut j = i + 1;
    let mut has_c = false;
    while j < argv.len() && argv[j].starts_with('-') && argv[j] != "--" {
        if argv[j].len() > 1 && !argv[j].starts_with("--") && argv[j][1..].contains('c') {
            has_c = true;
        }
        j += 1;
        if has_c {
            break;
        }
    }
    has_c.then_some(j)
}

impl Template {
    /// Parses an argv template; refuses a placeholder in a shell script.
    pub fn parse(argv: &[String]) -> Result<Template> {
        if argv.is_empty() {
            return Err(bad("it is empty: give at least the program to run"));
        }
        let mut args = Vec::with_capacity(argv.len());
        for a in argv {
            if a.contains('\0') {
                return Err(bad("it holds a NUL character"));
            }
            args.push(parse_arg(a)?);
        }
        if let Some(i) = shell_script_index(argv) {
            if let Some(script) = args.get(i) {
                if let Some(Piece::Slot { kind, name }) =
                    script.iter().find(|p| matches!(p, Piece::Slot { .. }))
                {
                    let ph = format!("{{{{{}.{name}}}}}", kind.placeholder_word());
                    return Err(bad(format!(
                        "{ph} is inside the script of a shell's -c, where the shell would parse its value (a `;` or `$(…)` in it would run). Pass it as a positional parameter instead: `sh -c '… \"$1\"' _ {ph}`"
                    )));
                }
            }
        }
        Ok(Template { args })
    }

    /// Every placeholder, in order of first use.
    pub fn slots(&self) -> Vec<(ParamKind, String)> {
        let mut seen = Vec::new();
        for a in &self.args {
            for p in a {
                if let Piece::Slot { kind, name } = p {
                    if !seen.iter().any(|(k, n)| k == kind && n == name) {
                        seen.push((*kind, name.clone()));
                    }
                }
            }
        }
        seen
    }

    /// The argv with every placeholder filled by `values` (already checked and printed by their
    /// types). A value that fills a whole argument and starts with `-` is refused unless its
    /// parameter allows it (`may_start_with_dash`).
    pub fn render(
        &self,
        values: &BTreeMap<(ParamKind, String), String>,
        may_start_with_dash: impl Fn(ParamKind, &str) -> bool,
    ) -> Result<Vec<String>> {
        let mut argv = Vec::with_capacity(self.args.len());
        for a in &self.args {
            let mut s = String::new();
            for p in a {
                match p {
                    Piece::Text(t) => s.push_str(t),
                    Piece::Slot { kind, name } => {
                        let v = values.get(&(*kind, name.clone())).ok_or_else(|| {
                            CoreError::InvalidInput {
                                what: format!("{}.{name}", kind.placeholder_word()),
                                reason: "it has no value and no default".into(),
                            }
                        })?;
                        if v.contains('\0') {
                            return Err(CoreError::InvalidInput {
                                what: format!("{}.{name}", kind.placeholder_word()),
                                reason: "it holds a NUL character".into(),
                            });
                        }
                        if a.len() == 1 && v.starts_with('-') && !may_start_with_dash(*kind, name) {
                            return Err(CoreError::InvalidInput {
                                what: format!("{}.{name}", kind.placeholder_word()),
                                reason: format!("\"{v}\" starts with '-' and fills a whole argument, where the program would read it as an option"),
                            });
                        }
                        s.push_str(v);
                    }
                }
            }
            argv.push(s);
        }
        Ok(argv)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vals(v: &[(ParamKind, &str, &str)]) -> BTreeMap<(ParamKind, String), String> {
        v.iter()
            .map(|(k, n, x)| ((*k, n.to_string()), x.to_string()))
            .collect()
    }

    fn sv(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn argons_own_example_splits_once_and_renders() {
        let cmd = "python3 /home/mediacloud/main_transcode.py --task_id={{inputs.task_id}} --date={{inputs.date}} --log_path={{configs.log_path}} --cache_path={{configs.cache_path}} --input_file={{inputs.input_file}} --output={{outputs.output}} --format={{inputs.format}} --vcodec={{inputs.vcodec}} --acodec={{inputs.acodec}}";
        let argv = split_command(cmd).unwrap();
        assert_eq!(argv.len(), 11);
        let t = Template::parse(&argv).unwrap();
        assert_eq!(t.slots().len(), 9);
        let mut v = BTreeMap::new();
        for (k, n) in t.slots() {
            v.insert((k, n.clone()), format!("v-{n}"));
        }
        v.insert((ParamKind::Input, "task_id".into()), "-".into());
        let out = t.render(&v, |_, _| false).unwrap();
        assert_eq!(out[2], "--task_id=-", "a dash inside an argument is fine");
        assert_eq!(out[7], "--output=v-output");
    }

    #[test]
    fn values_are_never_parsed_again() {
        let t = Template::parse(&sv(&["echo", "--in={{inputs.file}}", "{{inputs.file}}"])).unwrap();
        for evil in [
            "; rm -rf /",
            "$(reboot)",
            "`id`",
            "a b\tc",
            "'\"",
            "{{inputs.file}}",
            "\\n",
            "*",
        ] {
            let out = t
                .render(&vals(&[(ParamKind::Input, "file", evil)]), |_, _| false)
                .unwrap();
            assert_eq!(
                out,
                vec!["echo".to_string(), format!("--in={evil}"), evil.to_string()],
                "{evil}"
            );
        }
    }

    #[test]
    fn refusals_say_why() {
        let cases: Vec<(Vec<&str>, &str)> = vec![
            (
                vec!["sh", "-c", "convert {{inputs.file}} out.png"],
                "positional parameter",
            ),
            (
                vec!["/bin/bash", "-lc", "echo {{configs.x}}"],
                "positional parameter",
            ),
            (
                vec!["env", "A=1", "sh", "-e", "-c", "run {{inputs.x}}"],
                "positional parameter",
            ),
            (
                vec!["busybox", "sh", "-c", "x{{inputs.x}}"],
                "positional parameter",
            ),
            (vec!["run", "{{inputs.x"], "never closes"),
            (vec!["run", "{{x}}"], "not a placeholder"),
            (
                vec!["run", "{{secrets.x}}"],
                "not inputs, outputs or configs",
            ),
            (vec!["run", "{{inputs.1x}}"], "not a parameter name"),
            (vec![], "empty"),
            (vec!["a\0b"], "NUL"),
        ];
        for (argv, why) in cases {
            let e = Template::parse(&sv(&argv)).unwrap_err().to_string();
            assert!(e.contains(why), "{argv:?}: {e}");
        }
        // The positional way is accepted: the value is $1, not part of the script.
        let ok = Template::parse(&sv(&[
            "sh",
            "-c",
            "convert \"$1\" out.png",
            "_",
            "{{inputs.file}}",
        ]))
        .unwrap();
        assert_eq!(ok.slots().len(), 1);
        assert!(split_command("run 'unbalanced").is_err());
        assert!(split_command("   ").is_err());
    }

    #[test]
    fn a_whole_argument_starting_with_a_dash_is_refused_unless_allowed() {
        let t = Template::parse(&sv(&["tool", "{{inputs.x}}"])).unwrap();
        let v = vals(&[(ParamKind::Input, "x", "--delete-all")]);
        let e = t.render(&v, |_, _| false).unwrap_err().to_string();
        assert!(e.contains("starts with '-'"), "{e}");
        assert_eq!(t.render(&v, |_, _| true).unwrap()[1], "--delete-all");
        let e = t
            .render(&vals(&[(ParamKind::Input, "x", "a\0b")]), |_, _| true)
            .unwrap_err()
            .to_string();
        assert!(e.contains("NUL"), "{e}");
        let e = t
            .render(&BTreeMap::new(), |_, _| true)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no value"), "{e}");
    }

    /// Rendering is a pure fill: for random values, each argument is its template's text with the
    /// value in place, and the argument count never changes.
    #[test]
    fn fuzz_render_keeps_the_argument_structure() {
        let t = Template::parse(&sv(&["p", "a{{inputs.x}}b", "{{configs.y}}", "c"])).unwrap();
        let mut seed = 0x2545F4914F6CDD1Du64;
        for _ in 0..5000 {
            let mut gen = |n: usize| -> String {
                (0..n)
                    .map(|_| {
                        seed ^= seed << 13;
                        seed ^= seed >> 7;
                        seed ^= seed << 17;
                        char::from_u32((seed % 0x2FF) as u32 + 1).unwrap_or('x')
                    })
                    .collect()
            };
            let (x, y) = (gen(8), gen(5));
            let y = y.trim_start_matches('-').to_string();
            let out = t
                .render(
                    &vals(&[(ParamKind::Input, "x", &x), (ParamKind::Config, "y", &y)]),
                    |_, _| false,
                )
                .unwrap();
            assert_eq!(out.len(), 4);
            assert_eq!(out[1], format!("a{x}b"));
            assert_eq!(out[2], y);
        }
        // And the parser never panics on random text.
        for _ in 0..5000 {
            let n = (seed % 20) as usize;
            let s: String = (0..n)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    ['{', '}', '.', 'a', 'i', ' ', '"', '\'', '\\', '-'][(seed % 10) as usize]
                })
                .collect();
            let _ = split_command(&s).map(|v| Template::parse(&v));
        }
    }
}
