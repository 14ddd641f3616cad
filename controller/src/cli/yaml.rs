//! YAML as kubectl prints it (`sigs.k8s.io/yaml`, i.e. go-yaml v2 over JSON): keys sorted,
//! two-space indent, list items at the indent of their key, strings that would read back as
//! something else (`"104"`, `"true"`, timestamps) in double quotes, strings the plain style
//! cannot hold in single quotes, multi-line strings as literal blocks.

use serde_json::{Map, Value};

/// Renders a JSON value as YAML.
pub fn to_yaml(v: &Value) -> String {
    let mut out = String::new();
    match v {
        Value::Object(m) if !m.is_empty() => map(&mut out, m, 0),
        Value::Array(a) if !a.is_empty() => list(&mut out, a, 0),
        other => {
            out.push_str(&inline(other).unwrap_or_default());
            out.push('\n');
        }
    }
    out
}

/// The one-line form of a value, if it has one (scalars, empty collections).
fn inline(v: &Value) -> Option<String> {
    Some(match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) if s.contains('\n') && literal_ok(s) => return None,
        Value::String(s) => scalar(s),
        Value::Object(m) if m.is_empty() => "{}".into(),
        Value::Array(a) if a.is_empty() => "[]".into(),
        _ => return None,
    })
}

fn map(out: &mut String, m: &Map<String, Value>, indent: usize) {
    let pad = " ".repeat(indent);
    let mut keys: Vec<&String> = m.keys().collect();
    keys.sort();
    for k in keys {
        let v = &m[k];
        let key = scalar(k);
        match (inline(v), v) {
            (Some(text), _) => out.push_str(&format!("{pad}{key}: {text}\n")),
            (None, Value::String(s)) => {
                out.push_str(&format!("{pad}{key}: {}\n", block_header(s)));
                block_lines(out, s, indent + 2);
            }
            (None, Value::Object(inner)) => {
                out.push_str(&format!("{pad}{key}:\n"));
                map(out, inner, indent + 2);
            }
            (None, Value::Array(items)) => {
                out.push_str(&format!("{pad}{key}:\n"));
                list(out, items, indent);
            }
            (None, _) => {}
        }
    }
}

fn list(out: &mut String, items: &[Value], indent: usize) {
    let pad = " ".repeat(indent);
    for item in items {
        match (inline(item), item) {
            (Some(text), _) => out.push_str(&format!("{pad}- {text}\n")),
            (None, Value::String(s)) => {
                out.push_str(&format!("{pad}- {}\n", block_header(s)));
                block_lines(out, s, indent + 2);
            }
            (None, nested) => {
                // Render at indent + 2, then put the dash where the first line's indent is.
                let mut inner = String::new();
                match nested {
                    Value::Object(m) => map(&mut inner, m, indent + 2),
                    Value::Array(a) => list(&mut inner, a, indent + 2),
                    _ => {}
                }
                out.push_str(&pad);
                out.push_str("- ");
                out.push_str(&inner[indent + 2..]);
            }
        }
    }
}

/// Whether a multi-line string can be a literal block.
fn literal_ok(s: &str) -> bool {
    !s.starts_with([' ', '\n'])
        && s.chars().all(|c| c == '\n' || c == '\t' || !c.is_control())
        && !s
            .lines()
            .any(|l| l.ends_with(' ') && l.trim().is_empty() && !l.is_empty())
}

/// `|`, `|-` or `|+`, by how the string ends.
fn block_header(s: &str) -> &'static str {
    if !s.ends_with('\n') {
        "|-"
    } else if s.ends_with("\n\n") {
        "|+"
    } else {
        "|"
    }
}

fn block_lines(out: &mut String, s: &str, indent: usize) {
    let pad = " ".repeat(indent);
    let body = s.strip_suffix('\n').unwrap_or(s);
    for line in body.split('\n') {
        if line.is_empty() {
            out.push('\n');
        } else {
            out.push_str(&pad);
            out.push_str(line);
            out.push('\n');
        }
    }
}

/// A string scalar: plain, single- or double-quoted, as go-yaml would choose.
fn scalar(s: &str) -> String {
    if s.chars().any(|c| c.is_control() || c == '\u{feff}') {
        return double_quoted(s);
    }
    if s.is_empty() || resolves_to_non_string(s) {
        return double_quoted(s);
    }
    if !plain_ok(s) {
        return format!("'{}'", s.replace('\'', "''"));
    }
    s.to_string()
}

fn double_quoted(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() || c == '\u{feff}' => {
                out.push_str(&format!("\\u{:04X}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Whether the plain style can hold `s` (no indicator at the start, no `: ` or ` #`, no
/// leading or trailing space).
fn plain_ok(s: &str) -> bool {
    let first = s.chars().next().unwrap_or(' ');
    if matches!(
        first,
        '-' | '?'
            | ':'
            | ','
            | '['
            | ']'
            | '{'
            | '}'
            | '#'
            | '&'
            | '*'
            | '!'
            | '|'
            | '>'
            | '\''
            | '"'
            | '%'
            | '@'
            | '`'
    ) {
        // `-x`, `?x` and `:x` are fine when not followed by a space.
        let second = s.chars().nth(1);
        let soft = matches!(first, '-' | '?' | ':') && second.is_some_and(|c| c != ' ');
        if !soft {
            return false;
        }
    }
    if s.starts_with(' ') || s.ends_with(' ') || s.ends_with(':') {
        return false;
    }
    if s.contains(": ") || s.contains(" #") || s.contains('\t') {
        return false;
    }
    // Flow indicators are fine in block context, except `, ` patterns after `[`/`{` starts,
    // which the first-character check covers.
    true
}

/// YAML 1.1 implicit types go-yaml v2 resolves: null, bool, int, float, timestamp.
fn resolves_to_non_string(s: &str) -> bool {
    const WORDS: [&str; 28] = [
        "~", "null", "Null", "NULL", "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO",
        "true", "True", "TRUE", "false", "False", "FALSE", "on", "On", "ON", "off", "Off", "OFF",
        ".nan", ".NaN",
    ];
    if WORDS.contains(&s) {
        return true;
    }
    let lower = s.to_ascii_lowercase();
    if matches!(lower.trim_start_matches(['+', '-']), ".inf" | ".nan") {
        return true;
    }
    is_number(s) || is_timestamp(s)
}

fn is_number(s: &str) -> bool {
    let t = s.strip_prefix(['+', '-']).unwrap_or(s).replace('_', "");
    if t.is_empty() {
        return false;
    }
    if let Some(hex) = t.strip_prefix("0x") {
        return !hex.is_empty() && hex.chars().all(|c| c.is_ascii_hexdigit());
    }
    if let Some(bin) = t.strip_prefix("0b") {
        return !bin.is_empty() && bin.chars().all(|c| c == '0' || c == '1');
    }
    if t.contains(':') {
        // Sexagesimal (base 60) numbers: 1:20, 190:20:30.
        let parts: Vec<&str> = t.split(':').collect();
        return parts
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
            && parts[1..].iter().all(|p| p.len() <= 2);
    }
    // [0-9]*(\.[0-9]*)?([eE][-+]?[0-9]+)?, with at least one digit.
    let (mantissa, exponent) = match t.find(['e', 'E']) {
        Some(i) => (&t[..i], Some(&t[i + 1..])),
        None => (t.as_str(), None),
    };
    let digits = mantissa.chars().filter(char::is_ascii_digit).count();
    let dots = mantissa.chars().filter(|c| *c == '.').count();
    let mantissa_ok =
        digits > 0 && dots <= 1 && mantissa.chars().all(|c| c.is_ascii_digit() || c == '.');
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['+', '-']).unwrap_or(e);
        !e.is_empty() && e.chars().all(|c| c.is_ascii_digit())
    });
    mantissa_ok && exponent_ok
}

fn is_timestamp(s: &str) -> bool {
    // YYYY-M?M-D?D, optionally followed by [Tt ]time.
    let b = s.as_bytes();
    if b.len() < 8 || !b[..4].iter().all(u8::is_ascii_digit) || b[4] != b'-' {
        return false;
    }
    let rest = &s[5..];
    let mut parts = rest.splitn(2, '-');
    let month = parts.next().unwrap_or("");
    let Some(day_and_time) = parts.next() else {
        return false;
    };
    let day_len = day_and_time.bytes().take_while(u8::is_ascii_digit).count();
    let month_ok = (1..=2).contains(&month.len()) && month.bytes().all(|c| c.is_ascii_digit());
    let day_ok = (1..=2).contains(&day_len);
    if !month_ok || !day_ok {
        return false;
    }
    let time = &day_and_time[day_len..];
    time.is_empty() || time.starts_with(['T', 't', ' '])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn round_trips(v: &Value) {
        let text = to_yaml(v);
        let back: Value = serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(&back, v, "\n{text}");
    }

    #[test]
    fn kubectl_shaped_yaml() {
        let pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "myblog", "resourceVersion": "104", "creationTimestamp": "2024-05-10T11:00:00Z",
                         "labels": {"app.kubernetes.io/name": "blog"}, "annotations": {}},
            "spec": {"containers": [{"name": "c", "image": "nginx:1.25", "args": ["-c", "echo hi: there"],
                                     "ports": [{"containerPort": 80}], "env": [{"name": "ON", "value": "on"}]}]},
            "status": {"phase": "Running", "conditions": []}
        });
        let text = to_yaml(&pod);
        assert_eq!(
            text,
            r#"apiVersion: v1
kind: Pod
metadata:
  annotations: {}
  creationTimestamp: "2024-05-10T11:00:00Z"
  labels:
    app.kubernetes.io/name: blog
  name: myblog
  resourceVersion: "104"
spec:
  containers:
  - args:
    - -c
    - 'echo hi: there'
    env:
    - name: "ON"
      value: "on"
    image: nginx:1.25
    name: c
    ports:
    - containerPort: 80
status:
  conditions: []
  phase: Running
"#
        );
        round_trips(&pod);
    }

    #[test]
    fn awkward_strings_round_trip() {
        for s in [
            "",
            " lead",
            "trail ",
            "a: b",
            "#x",
            "x #y",
            "- x",
            "-x",
            "[a]",
            "{}",
            "'q'",
            "\"d\"",
            "yes",
            "NO",
            "~",
            "null",
            "12",
            "-1.5e3",
            "0x1F",
            "1:20",
            "2024-01-02",
            "1.2.3",
            "line1\nline2",
            "ends\n",
            "two\n\n",
            "\nlead",
            "tab\there",
            "ctl\u{1}",
            "*star",
            "100%",
            "@at",
            "`tick",
            "a,b",
            "ünïcode",
            ".inf",
            "1e",
            "e1",
            "--",
            ":x",
            "key:",
        ] {
            round_trips(&json!({"k": s}));
            round_trips(&json!({"l": [s]}));
            round_trips(&json!({ s: 1 }));
        }
        round_trips(
            &json!({"nested": [[1, 2], [], {}, [{"a": [{"b": null}]}]], "n": null, "f": 1.5, "t": true}),
        );
    }

    #[test]
    fn multi_line_strings_are_literal_blocks() {
        assert_eq!(
            to_yaml(&json!({"script": "set -e\necho ok\n"})),
            "script: |\n  set -e\n  echo ok\n"
        );
        assert_eq!(to_yaml(&json!({"l": ["a\nb"]})), "l:\n- |-\n  a\n  b\n");
    }
}
