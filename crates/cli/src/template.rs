//! A small subset of Go's `text/template`, enough for the `--format`/`-f` values people
//! give docker: field paths (`{{.IPAM.Driver}}`), `{{json .X}}`, `{{index .Options "k"}}`,
//! `{{.Label "k"}}`, `range`/`if`/`with` … `else` … `end`, pipelines (`{{.Name | upper}}`),
//! `join`, `split`, `upper`, `lower`, `title`, `len`, `truncate`, `print`, `println`, and
//! `{{-`/`-}}` trimming. Data is JSON (`serde_json::Value`); values print as Go prints
//! decoded JSON (`map[k:v]` with sorted keys, `[a b]`, `<no value>` for null); `json`
//! escapes `<`, `>` and `&` in strings as Go's `json.Marshal` does.
//!
//! Limits: no variables (`$x`), no `printf`, no comparison functions. `{{json .}}` prints
//! an object's keys sorted, as Go prints a decoded map, unless the caller gives the field
//! order of the Go struct docker would print (`render_ordered`). An object printed without
//! `json` (`{{.IPAM}}`) prints as a map (`map[…]`) where docker prints Go's struct form.
//!
//! In header mode (`render_header`) fields print their column titles and functions pass
//! their argument through, as docker's table headers do.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
enum Arg {
    Dot,
    Field(Vec<String>),
    Str(String),
    Num(String),
    Bool(bool),
    Ident(String),
    Sub(Pipeline),
}

type Pipeline = Vec<Vec<Arg>>;

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Text(String),
    Action(Pipeline),
    /// `range`, `if` or `with`: the pipeline, the body, the `else` body.
    Block(&'static str, Pipeline, Vec<Node>, Vec<Node>),
}

/// A parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    nodes: Vec<Node>,
}

enum Token {
    Text(String),
    Action(String),
}

/// Splits the source into text and actions, applying `{{-` and `-}}` trimming.
fn lex(src: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let mut rest = src;
    let mut trim_next = false;
    while let Some(start) = rest.find("{{") {
        let mut text = &rest[..start];
        if trim_next {
            text = text.trim_start();
        }
        let after = &rest[start + 2..];
        let trim_prev = after.starts_with("- ") || after.starts_with("-\t");
        if trim_prev {
            text = text.trim_end();
        }
        if !text.is_empty() {
            out.push(Token::Text(text.to_owned()));
        }
        let end = after
            .find("}}")
            .ok_or_else(|| "template: :1: unclosed action".to_owned())?;
        let mut action = &after[..end];
        if trim_prev {
            action = &action[1..];
        }
        trim_next = action.ends_with(" -") || action.ends_with("\t-");
        if trim_next {
            action = &action[..action.len() - 1];
        }
        out.push(Token::Action(action.trim().to_owned()));
        rest = &after[end + 2..];
    }
    let text = if trim_next { rest.trim_start() } else { rest };
    if !text.is_empty() {
        out.push(Token::Text(text.to_owned()));
    }
    Ok(out)
}

/// Splits an action into words: strings, parentheses and `|` are words of their own.
fn words(action: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut chars = action.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '(' | ')' | '|' => {
                out.push(c.to_string());
                chars.next();
            }
            '"' | '`' => {
                let mut w = String::from(c);
                chars.next();
                loop {
                    match chars.next() {
                        Some('\\') if c == '"' => {
                            w.push('\\');
                            w.extend(chars.next());
                        }
                        Some(q) if q == c => {
                            w.push(q);
                            break;
                        }
                        Some(o) => w.push(o),
                        None => return Err("template: :1: unterminated quoted string".into()),
                    }
                }
                out.push(w);
            }
            _ => {
                let mut w = String::new();
                while let Some(&o) = chars.peek() {
                    if o.is_whitespace() || matches!(o, '(' | ')' | '|') {
                        break;
                    }
                    w.push(o);
                    chars.next();
                }
                out.push(w);
            }
        }
    }
    Ok(out)
}

fn unquote(w: &str) -> Result<String, String> {
    if let Some(raw) = w.strip_prefix('`') {
        return Ok(raw.trim_end_matches('`').to_owned());
    }
    serde_json::from_str::<String>(w).map_err(|_| format!("template: :1: bad string {w}"))
}

fn parse_pipeline(ws: &[String], pos: &mut usize) -> Result<Pipeline, String> {
    let mut cmds = vec![Vec::new()];
    while *pos < ws.len() {
        let w = &ws[*pos];
        *pos += 1;
        let arg = match w.as_str() {
            ")" => break,
            "|" => {
                cmds.push(Vec::new());
                continue;
            }
            "(" => Arg::Sub(parse_pipeline(ws, pos)?),
            "." => Arg::Dot,
            "true" => Arg::Bool(true),
            "false" => Arg::Bool(false),
            w if w.starts_with('.') => Arg::Field(w[1..].split('.').map(str::to_owned).collect()),
            w if w.starts_with(['"', '`']) => Arg::Str(unquote(w)?),
            w if w.starts_with(|c: char| c.is_ascii_digit() || c == '-') => Arg::Num(w.to_owned()),
            w if w.starts_with('$') => {
                return Err(format!("template: :1: variables are not supported: {w}"));
            }
            w => Arg::Ident(w.to_owned()),
        };
        if let Some(last) = cmds.last_mut() {
            last.push(arg);
        }
    }
    if cmds.iter().any(Vec::is_empty) {
        return Err("template: :1: missing value for command".into());
    }
    Ok(cmds)
}

fn parse_action(action: &str) -> Result<Pipeline, String> {
    let ws = words(action)?;
    let mut pos = 0;
    parse_pipeline(&ws, &mut pos)
}

/// Parses nodes until `end` (or `else`) for a block, or the end of input at top level.
fn parse_nodes(
    tokens: &mut std::iter::Peekable<std::vec::IntoIter<Token>>,
    in_block: bool,
) -> Result<(Vec<Node>, Option<&'static str>), String> {
    let mut nodes = Vec::new();
    while let Some(t) = tokens.next() {
        match t {
            Token::Text(s) => nodes.push(Node::Text(s)),
            Token::Action(a) => {
                let (head, rest) = a.split_once(char::is_whitespace).unwrap_or((&a, ""));
                match head {
                    "end" | "else" if !in_block => {
                        return Err(format!("template: :1: unexpected {{{{{head}}}}}"));
                    }
                    "end" => return Ok((nodes, Some("end"))),
                    "else" => return Ok((nodes, Some("else"))),
                    "range" | "if" | "with" => {
                        let kind = match head {
                            "range" => "range",
                            "if" => "if",
                            _ => "with",
                        };
                        let pipe = parse_action(rest)?;
                        let (body, stop) = parse_nodes(tokens, true)?;
                        let otherwise = match stop {
                            Some("else") => parse_nodes(tokens, true)?.0,
                            Some(_) => Vec::new(),
                            None => return Err("template: :1: unexpected EOF".into()),
                        };
                        nodes.push(Node::Block(kind, pipe, body, otherwise));
                    }
                    _ if a.starts_with("/*") => {}
                    _ => nodes.push(Node::Action(parse_action(&a)?)),
                }
            }
        }
    }
    if in_block {
        return Err("template: :1: unexpected EOF".into());
    }
    Ok((nodes, None))
}

impl Template {
    /// Parses `src`; errors carry Go's `template: …` wording where it is known.
    pub fn parse(src: &str) -> Result<Self, String> {
        let mut tokens = lex(src)?.into_iter().peekable();
        Ok(Self {
            nodes: parse_nodes(&mut tokens, false)?.0,
        })
    }

    /// Renders the template with `data` as dot and `methods`: maps that `{{.Method "key"}}` looks keys up in (docker's
    /// `.Label "key"`), kept apart from the data so that `{{json .}}` leaves them out.
    pub fn render_with(&self, data: &Value, methods: &Value) -> Result<String, String> {
        let mut out = String::new();
        Exec {
            header: false,
            methods,
            key_order: &[],
        }
        .nodes(&self.nodes, data, &mut out)?;
        Ok(out)
    }

    /// Renders with `{{json}}` writing the keys of objects whose keys all appear in
    /// `key_order` in that order (the field order of the Go struct docker would print),
    /// other objects (Go maps) with sorted keys.
    pub fn render_ordered(&self, data: &Value, key_order: &[&str]) -> Result<String, String> {
        let mut out = String::new();
        Exec {
            header: false,
            methods: &Value::Null,
            key_order,
        }
        .nodes(&self.nodes, data, &mut out)?;
        Ok(out)
    }

    /// Renders a table header: `headers` maps field names to column titles.
    pub fn render_header(&self, headers: &Value) -> String {
        let mut out = String::new();
        // As docker, a header that cannot be rendered is cut where it failed.
        let _ = Exec {
            header: true,
            methods: &Value::Null,
            key_order: &[],
        }
        .nodes(&self.nodes, headers, &mut out);
        out
    }
}

/// How Go prints a decoded JSON value with `{{.}}`.
pub fn go_print(v: &Value) -> String {
    match v {
        Value::Null => "<no value>".into(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(go_print_inner).collect::<Vec<_>>().join(" ")
        ),
        Value::Object(m) => format!(
            "map[{}]",
            m.iter()
                .map(|(k, v)| format!("{k}:{}", go_print_inner(v)))
                .collect::<Vec<_>>()
                .join(" ")
        ),
    }
}

/// Values nested in maps and slices: nil prints `<nil>`.
fn go_print_inner(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".into(),
        v => go_print(v),
    }
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(m) => !m.is_empty(),
    }
}

fn as_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        v => go_print(v),
    }
}

/// docker's `SubHeaderContext.Label`: the last dotted part, dashes and underscores as
/// spaces.
fn label_header(name: &str) -> String {
    name.rsplit('.')
        .next()
        .unwrap_or(name)
        .replace(['-', '_'], " ")
}

/// JSON with struct-like objects in `order` (see `Template::render_ordered`).
fn ordered_json(v: &Value, order: &[&str]) -> String {
    match v {
        Value::Array(a) => format!(
            "[{}]",
            a.iter()
                .map(|x| ordered_json(x, order))
                .collect::<Vec<_>>()
                .join(",")
        ),
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            let pos = |k: &str| order.iter().position(|o| *o == k);
            if keys.iter().all(|k| pos(k).is_some()) {
                keys.sort_by_key(|k| pos(k));
            }
            let fields: Vec<String> = keys
                .iter()
                .map(|k| {
                    format!(
                        "{}:{}",
                        go_json_string(k),
                        ordered_json(&m[k.as_str()], order)
                    )
                })
                .collect();
            format!("{{{}}}", fields.join(","))
        }
        Value::String(text) => go_json_string(text),
        v => v.to_string(),
    }
}

/// A JSON string as Go's `json.Marshal` writes it: `<`, `>`, `&`, U+2028 and U+2029
/// escaped (they can only appear as themselves inside serde's string literal).
fn go_json_string(s: &str) -> String {
    Value::String(s.to_owned())
        .to_string()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

struct Exec<'a> {
    header: bool,
    methods: &'a Value,
    key_order: &'a [&'a str],
}

impl Exec<'_> {
    fn nodes(&self, nodes: &[Node], dot: &Value, out: &mut String) -> Result<(), String> {
        for n in nodes {
            match n {
                Node::Text(s) => out.push_str(s),
                Node::Action(p) => out.push_str(&go_print(&self.pipeline(p, dot)?)),
                Node::Block(kind, p, body, otherwise) => {
                    let v = self.pipeline(p, dot)?;
                    match *kind {
                        "range" => {
                            let items: Vec<&Value> = match &v {
                                Value::Array(a) => a.iter().collect(),
                                Value::Object(m) => m.values().collect(),
                                Value::Null => Vec::new(),
                                other => {
                                    return Err(format!(
                                        "range can't iterate over {}",
                                        go_print(other)
                                    ));
                                }
                            };
                            if items.is_empty() {
                                self.nodes(otherwise, dot, out)?;
                            }
                            for item in items {
                                self.nodes(body, item, out)?;
                            }
                        }
                        "if" if truthy(&v) => self.nodes(body, dot, out)?,
                        "with" if truthy(&v) => self.nodes(body, &v, out)?,
                        _ => self.nodes(otherwise, dot, out)?,
                    }
                }
            }
        }
        Ok(())
    }

    fn pipeline(&self, p: &Pipeline, dot: &Value) -> Result<Value, String> {
        let mut piped = None;
        for cmd in p {
            piped = Some(self.command(cmd, dot, piped.take())?);
        }
        Ok(piped.unwrap_or(Value::Null))
    }

    fn operand(&self, a: &Arg, dot: &Value) -> Result<Value, String> {
        Ok(match a {
            Arg::Dot => dot.clone(),
            Arg::Field(path) => {
                let mut v = dot;
                for key in path {
                    v = match v {
                        Value::Object(m) => m.get(key).ok_or_else(|| {
                            format!(
                                "template: :1: executing \"\" at <.{}>: map has no entry for key \"{key}\"",
                                path.join(".")
                            )
                        })?,
                        Value::Null => &Value::Null,
                        other => {
                            return Err(format!(
                                "template: :1: executing \"\" at <.{}>: can't evaluate field {key} in type {}",
                                path.join("."),
                                match other {
                                    Value::String(_) => "string",
                                    Value::Array(_) => "[]interface {}",
                                    _ => "interface {}",
                                }
                            ));
                        }
                    };
                }
                v.clone()
            }
            Arg::Str(s) => Value::String(s.clone()),
            Arg::Num(n) => {
                serde_json::from_str(n).map_err(|_| format!("bad number syntax: {n}"))?
            }
            Arg::Bool(b) => Value::Bool(*b),
            Arg::Sub(p) => self.pipeline(p, dot)?,
            Arg::Ident(f) => self.call(f, Vec::new())?,
        })
    }

    fn command(&self, cmd: &[Arg], dot: &Value, piped: Option<Value>) -> Result<Value, String> {
        let mut args = Vec::new();
        for a in &cmd[1..] {
            args.push(self.operand(a, dot)?);
        }
        args.extend(piped);
        match &cmd[0] {
            Arg::Ident(f) => self.call(f, args),
            Arg::Field(path) if !args.is_empty() => {
                // A method with arguments, such as docker's `.Label "key"`.
                if self.header {
                    return Ok(Value::String(label_header(&as_text(&args[0]))));
                }
                let method = match path.as_slice() {
                    [name] => self.methods.get(name),
                    _ => None,
                };
                let mut v = match method {
                    Some(m) => m.clone(),
                    None => self.operand(&Arg::Field(path.clone()), dot)?,
                };
                for a in args {
                    v = v
                        .get(as_text(&a))
                        .cloned()
                        .unwrap_or(Value::String(String::new()));
                }
                Ok(v)
            }
            first if !args.is_empty() => Err(format!(
                "template: :1: can't give argument to non-function {:?}",
                first
            )),
            first => self.operand(first, dot),
        }
    }

    fn call(&self, f: &str, args: Vec<Value>) -> Result<Value, String> {
        let arg = |i: usize| args.get(i).cloned().unwrap_or(Value::Null);
        let text = |i: usize| as_text(&arg(i));
        if self.header && !matches!(f, "print" | "println") {
            return Ok(arg(0));
        }
        Ok(match f {
            "json" => Value::String(ordered_json(&arg(0), self.key_order)),
            "index" => {
                let mut v = arg(0);
                for k in &args[1.min(args.len())..] {
                    v = match (&v, k) {
                        (Value::Array(a), Value::Number(n)) => n
                            .as_u64()
                            .and_then(|i| a.get(i as usize))
                            .cloned()
                            .ok_or_else(|| {
                                format!("error calling index: index out of range: {n}")
                            })?,
                        (Value::Object(m), k) => m.get(&as_text(k)).cloned().unwrap_or(Value::Null),
                        _ => Value::Null,
                    };
                }
                v
            }
            "join" => Value::String(match arg(0) {
                Value::Array(a) => a.iter().map(as_text).collect::<Vec<_>>().join(&text(1)),
                other => as_text(&other),
            }),
            "split" => Value::Array(
                text(0)
                    .split(&text(1))
                    .map(|s| Value::String(s.to_owned()))
                    .collect(),
            ),
            "upper" => Value::String(text(0).to_uppercase()),
            "lower" => Value::String(text(0).to_lowercase()),
            "title" => Value::String(
                text(0)
                    .split(' ')
                    .map(|w| {
                        let mut c = w.chars();
                        c.next()
                            .map(|f| f.to_uppercase().chain(c).collect())
                            .unwrap_or_default()
                    })
                    .collect::<Vec<String>>()
                    .join(" "),
            ),
            "len" => Value::from(match arg(0) {
                Value::Array(a) => a.len(),
                Value::Object(m) => m.len(),
                Value::String(s) => s.len(),
                other => return Err(format!("error calling len: len of {}", go_print(&other))),
            }),
            "truncate" => {
                let n = arg(1).as_u64().unwrap_or(0) as usize;
                Value::String(text(0).chars().take(n).collect())
            }
            "print" => Value::String(args.iter().map(as_text).collect::<Vec<_>>().join("")),
            "println" => {
                Value::String(args.iter().map(as_text).collect::<Vec<_>>().join(" ") + "\n")
            }
            other => return Err(format!("template: :1: function \"{other}\" not defined")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn render(t: &str, v: &Value) -> String {
        Template::parse(t)
            .expect("parse")
            .render_with(v, &Value::Null)
            .expect("render")
    }

    #[test]
    fn fields_functions_and_blocks_render_like_go() {
        let v = json!({
            "Name": "net1",
            "IPAM": {"Driver": "default", "Config": [{"Subnet": "10.1.0.0/16"}, {"Subnet": "10.2.0.0/16"}]},
            "Labels": {"b": "2", "a": "1"},
            "Options": {},
            "Internal": false,
            "Containers": null,
        });
        assert_eq!(render("{{.Name}}", &v), "net1");
        assert_eq!(render("{{ .IPAM.Driver }}", &v), "default");
        assert_eq!(
            render("{{range .IPAM.Config}}{{.Subnet}} {{end}}", &v),
            "10.1.0.0/16 10.2.0.0/16 "
        );
        assert_eq!(render("{{json .Labels}}", &v), r#"{"a":"1","b":"2"}"#);
        assert_eq!(
            render("{{json .}}", &json!({"a<b": "x & y > z"})),
            r#"{"a\u003cb":"x \u0026 y \u003e z"}"#
        );
        assert_eq!(render("{{.Labels}}", &v), "map[a:1 b:2]");
        assert_eq!(render("{{index .Labels \"b\"}}", &v), "2");
        assert_eq!(render("{{.Name | upper}}", &v), "NET1");
        assert_eq!(render("{{if .Internal}}yes{{else}}no{{end}}", &v), "no");
        assert_eq!(render("{{with .IPAM}}{{.Driver}}{{end}}", &v), "default");
        assert_eq!(render("{{range .Containers}}x{{end}}", &v), "");
        assert_eq!(render("{{len .IPAM.Config}}", &v), "2");
        assert_eq!(render("a {{- \" b \" -}} c", &v), "a b c");
        assert_eq!(render("{{.Labels \"a\"}}", &v), "1");
        let t = Template::parse("{{.Label \"a\"}}|{{json .}}").expect("parse");
        assert_eq!(
            t.render_with(&json!({"N": 1}), &json!({"Label": {"a": "x"}}))
                .expect("render"),
            r#"x|{"N":1}"#
        );
        assert_eq!(render("{{join (split \"a,b\" \",\") \"+\"}}", &v), "a+b");
    }

    #[test]
    fn json_follows_the_given_struct_order() {
        let t = Template::parse("{{json .}}").expect("parse");
        let v = json!({"IPAM": {"Driver": "d", "Config": [{"Subnet": "s"}], "Options": {}},
                       "Labels": {"z": "1", "a": "2"}, "Name": "n"});
        assert_eq!(
            t.render_ordered(
                &v,
                &[
                    "Name", "IPAM", "Driver", "Options", "Config", "Labels", "Subnet"
                ]
            )
            .expect("render"),
            r#"{"Name":"n","IPAM":{"Driver":"d","Options":{},"Config":[{"Subnet":"s"}]},"Labels":{"a":"2","z":"1"}}"#
        );
    }

    #[test]
    fn errors_name_the_problem() {
        assert!(Template::parse("{{.Name").is_err());
        assert!(Template::parse("{{range .X}}").is_err());
        assert!(Template::parse("{{end}}").is_err());
        let t = Template::parse("{{.Nope}}").expect("parse");
        let e = t
            .render_with(&json!({"Name": "x"}), &Value::Null)
            .expect_err("missing key");
        assert!(e.contains("map has no entry for key \"Nope\""), "{e}");
        let t = Template::parse("{{nope .}}").expect("parse");
        assert!(t.render_with(&json!({}), &Value::Null).is_err());
    }

    #[test]
    fn headers_print_column_titles() {
        let h = json!({"ID": "NETWORK ID", "Name": "NAME"});
        let t =
            Template::parse("{{.ID}}\t{{.Name | upper}}\t{{.Label \"com.x-y\"}}").expect("parse");
        assert_eq!(t.render_header(&h), "NETWORK ID\tNAME\tx y");
    }
}
