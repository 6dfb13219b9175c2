//! `vouch parse [--json] FILE...`: reads each file (or stdin for `-`) as one datagram and
//! reports the message or the response a server would send.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use serde_json::{Value, json};
use vouch_msg::{HeaderName, HeaderRef, Message};

mod describe;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// One JSON object per file and line instead of the readable summary.
    #[arg(long)]
    json: bool,
    /// Files holding one SIP message each; `-` reads standard input.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
}

pub fn run(args: &Args) -> ExitCode {
    let mut any_invalid = false;
    let mut io_error = false;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for path in &args.files {
        let name = path.display().to_string();
        let data = match read(path) {
            Ok(d) => d,
            Err(e) => {
                eprintln!("vouch parse: cannot read {name}: {e}");
                io_error = true;
                continue;
            }
        };
        let result = Message::parse(data);
        any_invalid |= result.is_err();
        let written = if args.json {
            let v = match &result {
                Ok(m) => json_valid(&name, m),
                Err(e) => {
                    json!({"file": name, "valid": false, "status": e.status(), "reason": e.to_string()})
                }
            };
            writeln!(out, "{v}")
        } else {
            match &result {
                Ok(m) => write!(out, "{}", summary(&name, m)),
                Err(e) => writeln!(
                    out,
                    "{name}: invalid: {} {} ({e})\n",
                    e.status(),
                    e.reason_phrase()
                ),
            }
        };
        if written.is_err() {
            return ExitCode::from(2);
        }
    }
    if io_error {
        ExitCode::from(2)
    } else if any_invalid {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn read(path: &PathBuf) -> std::io::Result<Vec<u8>> {
    if path.as_os_str() == "-" {
        let mut v = Vec::new();
        std::io::stdin().read_to_end(&mut v)?;
        Ok(v)
    } else {
        std::fs::read(path)
    }
}

fn header_name(h: &HeaderRef<'_>) -> String {
    h.name
        .canonical()
        .map_or_else(|| h.raw_name.to_string(), str::to_string)
}

fn json_valid(file: &str, m: &Message) -> Value {
    let headers: Vec<Value> = m
        .headers()
        .map(|h| {
            let mut o = json!({"name": header_name(&h), "value": h.value});
            if h.name != HeaderName::Other {
                o["typed"] = match describe::typed(&h) {
                    Ok(t) => Value::String(t),
                    Err(e) => json!({"error": e}),
                };
            }
            o
        })
        .collect();
    let mut v =
        json!({"file": file, "valid": true, "headers": headers, "body_len": m.body_bytes().len()});
    match (m.method(), m.status()) {
        (Some(method), _) => {
            v["kind"] = "request".into();
            v["method"] = method.as_str().into();
            v["request_uri"] = m.request_uri_str().unwrap_or_default().into();
        }
        (None, Some(status)) => {
            v["kind"] = "response".into();
            v["status"] = status.into();
            v["reason"] = m.reason_phrase().unwrap_or_default().into();
        }
        (None, None) => {}
    }
    v
}

fn summary(file: &str, m: &Message) -> String {
    let mut s = format!(
        "{file}: valid {}\n  {}\n",
        if m.is_request() {
            "request"
        } else {
            "response"
        },
        m.start_line()
    );
    for h in m.headers() {
        let name = header_name(&h);
        let reading = if h.name == HeaderName::Other {
            "(extension header, kept verbatim)".to_string()
        } else {
            describe::typed(&h).unwrap_or_else(|e| format!("unreadable: {e}"))
        };
        s.push_str(&format!(
            "  {name}: {}\n      = {reading}\n",
            h.value.replace("\r\n", " ")
        ));
    }
    s.push_str(&format!("  body: {} bytes\n\n", m.body_bytes().len()));
    s
}
