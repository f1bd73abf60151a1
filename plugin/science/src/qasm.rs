//! OpenQASM 2 import: text to [`Circuit`], with errors that point at a line and column.
//!
//! Hand-written recursive descent, because no maintained crate fits:
//! `openqasm` 0.1 reads reals as `f32`, rejects exponent literals and ships an outdated `qelib1.inc`;
//! `oq3_parser` rejects QASM 2 syntax and panics on a missing include. Angles here keep full `f64`
//! precision, user `gate` definitions are inlined, and every error carries its position.
//!
//! Supported: `OPENQASM 2.0`, `include "qelib1.inc"` (built in), several `qreg`/`creg`, `gate`
//! definitions, register broadcast, `barrier` and `measure` (accepted, not simulated: every qubit is
//! read out at the end). Rejected with a clear error: `reset`, `if`, `opaque` gate calls and other
//! includes.

use crate::circuit::{Circuit, CircuitError, Gate};
use std::collections::HashMap;
use std::fmt;
use thiserror::Error;

/// Most instructions a program may expand to; guards against exponential gate-definition nesting.
pub const MAX_INSTRUCTIONS: usize = 20_000_000;
/// Deepest expression nesting accepted; guards the parser's stack.
const MAX_EXPR_DEPTH: usize = 200;
/// Most operators and functions in one expression. A chain `1+1+...+1` is parsed by a loop but
/// builds a tree as deep as it is long, which evaluation and dropping walk recursively: the bound
/// keeps every tree shallow enough for a 2 MiB thread stack, whatever the input.
pub const MAX_EXPR_OPERATIONS: usize = 1_000;
/// Deepest nesting of user gate definitions (a gate calling a gate calling ...): expansion
/// recurses once per level.
pub const MAX_GATE_NESTING: usize = 64;

/// What went wrong, for callers that branch on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    Syntax,
    MalformedNumber,
    UnknownGate,
    Arity,
    UndeclaredRegister,
    IndexOutOfRange,
    Redefinition,
    Unsupported,
    Invalid,
    TooLarge,
}

/// A parse error at a 1-based line and column.
#[derive(Debug, Clone, Error, PartialEq)]
#[error("line {line}, column {column}: {message}")]
pub struct ParseError {
    pub line: usize,
    pub column: usize,
    pub kind: ErrorKind,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pos {
    line: usize,
    column: usize,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Tok<'a> {
    Ident(&'a str),
    Int(u64),
    Real(f64),
    Str(&'a str),
    Sym(&'static str),
    Eof,
}

impl fmt::Display for Tok<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tok::Ident(s) => write!(f, "'{s}'"),
            Tok::Int(v) => write!(f, "'{v}'"),
            Tok::Real(v) => write!(f, "'{v}'"),
            Tok::Str(s) => write!(f, "\"{s}\""),
            Tok::Sym(s) => write!(f, "'{s}'"),
            Tok::Eof => write!(f, "end of input"),
        }
    }
}

fn error(pos: Pos, kind: ErrorKind, message: impl Into<String>) -> ParseError {
    ParseError {
        line: pos.line,
        column: pos.column,
        kind,
        message: message.into(),
    }
}

const SYMBOLS: [&str; 15] = [
    "->", "==", ";", ",", "(", ")", "[", "]", "{", "}", "+", "-", "*", "/", "^",
];

fn lex(src: &str) -> Result<Vec<(Tok<'_>, Pos)>, ParseError> {
    let bytes = src.as_bytes();
    let mut toks = Vec::with_capacity(src.len() / 3);
    let (mut i, mut line, mut line_start) = (0usize, 1usize, 0usize);
    while i < bytes.len() {
        let c = bytes[i];
        let pos = Pos {
            line,
            column: i - line_start + 1,
        };
        match c {
            b'\n' => {
                i += 1;
                line += 1;
                line_start = i;
            }
            b' ' | b'\t' | b'\r' | b'\x0c' => i += 1,
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i += 2;
                loop {
                    if i + 1 >= bytes.len() {
                        return Err(error(pos, ErrorKind::Syntax, "unterminated comment"));
                    }
                    if bytes[i] == b'*' && bytes[i + 1] == b'/' {
                        i += 2;
                        break;
                    }
                    if bytes[i] == b'\n' {
                        line += 1;
                        line_start = i + 1;
                    }
                    i += 1;
                }
            }
            b'a'..=b'z' | b'A'..=b'Z' | b'_' => {
                let start = i;
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
                toks.push((Tok::Ident(&src[start..i]), pos));
            }
            b'0'..=b'9' | b'.' if c != b'.' || bytes.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                let (tok, len) = lex_number(&bytes[i..])
                    .map_err(|m| error(pos, ErrorKind::MalformedNumber, m))?;
                i += len;
                toks.push((tok, pos));
            }
            b'"' => {
                let start = i + 1;
                let mut j = start;
                while j < bytes.len() && bytes[j] != b'"' && bytes[j] != b'\n' {
                    j += 1;
                }
                if j >= bytes.len() || bytes[j] != b'"' {
                    return Err(error(pos, ErrorKind::Syntax, "unterminated string"));
                }
                toks.push((Tok::Str(&src[start..j]), pos));
                i = j + 1;
            }
            _ => {
                let sym = SYMBOLS
                    .iter()
                    .find(|s| bytes[i..].starts_with(s.as_bytes()));
                let Some(sym) = sym else {
                    let ch = src[i..].chars().next().unwrap_or('?');
                    return Err(error(
                        pos,
                        ErrorKind::Syntax,
                        format!("unexpected character {ch:?}"),
                    ));
                };
                i += sym.len();
                toks.push((Tok::Sym(sym), pos));
            }
        }
    }
    toks.push((
        Tok::Eof,
        Pos {
            line,
            column: i - line_start + 1,
        },
    ));
    Ok(toks)
}

/// Lexes `123`, `1.5`, `.5`, `3.`, `1e-5`, `2.5E+3`; returns the token and its length in bytes.
fn lex_number(s: &[u8]) -> Result<(Tok<'static>, usize), String> {
    let mut j = 0;
    let digits = |j: &mut usize| {
        let start = *j;
        while *j < s.len() && s[*j].is_ascii_digit() {
            *j += 1;
        }
        *j - start
    };
    let int_digits = digits(&mut j);
    let mut is_real = false;
    if j < s.len() && s[j] == b'.' {
        is_real = true;
        j += 1;
        let frac = digits(&mut j);
        if int_digits == 0 && frac == 0 {
            return Err("malformed number '.'".into());
        }
    }
    let text = |end: usize| String::from_utf8_lossy(&s[..end]).into_owned();
    if j < s.len() && (s[j] == b'e' || s[j] == b'E') {
        is_real = true;
        j += 1;
        if j < s.len() && (s[j] == b'+' || s[j] == b'-') {
            j += 1;
        }
        if digits(&mut j) == 0 {
            return Err(format!(
                "malformed number '{}': exponent has no digits",
                text(j)
            ));
        }
    }
    if j < s.len() && (s[j].is_ascii_alphanumeric() || s[j] == b'_' || s[j] == b'.') {
        let mut k = j;
        while k < s.len() && (s[k].is_ascii_alphanumeric() || s[k] == b'_' || s[k] == b'.') {
            k += 1;
        }
        return Err(format!("malformed number '{}'", text(k)));
    }
    let literal = std::str::from_utf8(&s[..j]).map_err(|_| "malformed number".to_string())?;
    if is_real {
        let v: f64 = literal
            .parse()
            .map_err(|_| format!("malformed number '{literal}'"))?;
        Ok((Tok::Real(v), j))
    } else {
        let v: u64 = literal
            .parse()
            .map_err(|_| format!("integer '{literal}' is too large"))?;
        Ok((Tok::Int(v), j))
    }
}

/// A parameter expression inside a gate body, evaluated when the gate is called.
#[derive(Debug, Clone)]
enum Expr {
    Num(f64),
    Param(usize),
    Neg(Box<Expr>),
    Bin(char, Box<Expr>, Box<Expr>),
    Func(Func, Box<Expr>),
}

#[derive(Debug, Clone, Copy)]
enum Func {
    Sin,
    Cos,
    Tan,
    Exp,
    Ln,
    Sqrt,
}

impl Expr {
    fn eval(&self, params: &[f64]) -> f64 {
        match self {
            Expr::Num(v) => *v,
            Expr::Param(k) => params[*k],
            Expr::Neg(e) => -e.eval(params),
            Expr::Bin(op, a, b) => {
                let (a, b) = (a.eval(params), b.eval(params));
                match op {
                    '+' => a + b,
                    '-' => a - b,
                    '*' => a * b,
                    '/' => a / b,
                    _ => a.powf(b),
                }
            }
            Expr::Func(f, e) => {
                let v = e.eval(params);
                match f {
                    Func::Sin => v.sin(),
                    Func::Cos => v.cos(),
                    Func::Tan => v.tan(),
                    Func::Exp => v.exp(),
                    Func::Ln => v.ln(),
                    Func::Sqrt => v.sqrt(),
                }
            }
        }
    }
}

/// One call inside a user gate body: `name(params) args`, with arguments as indices into the
/// enclosing gate's qubit parameters.
#[derive(Debug, Clone)]
struct BodyCall {
    target: GateRef,
    params: Vec<Expr>,
    args: Vec<usize>,
}

#[derive(Debug, Clone)]
struct UserGate {
    num_params: usize,
    num_qubits: usize,
    body: Vec<BodyCall>,
    /// Builtin gates one call expands to (saturating), checked before expanding.
    expanded: u64,
    /// 1 for a body of builtin gates only, else one more than the deepest user gate it calls.
    nesting: usize,
}

/// What a gate name resolves to.
#[derive(Debug, Clone)]
enum GateRef {
    Builtin(Builtin),
    User(String),
}

#[derive(Debug, Clone, Copy)]
struct Builtin {
    num_params: usize,
    num_qubits: usize,
    make: fn(&[f64]) -> Gate,
}

/// The gates of `qelib1.inc` (and the language's own `U` and `CX`).
fn library_gate(name: &str) -> Option<Builtin> {
    use Gate::*;
    let b = |num_params, num_qubits, make| {
        Some(Builtin {
            num_params,
            num_qubits,
            make,
        })
    };
    match name {
        "id" => b(0, 1, |_| Id),
        "u0" => b(1, 1, |_| Id),
        "x" => b(0, 1, |_| X),
        "y" => b(0, 1, |_| Y),
        "z" => b(0, 1, |_| Z),
        "h" => b(0, 1, |_| H),
        "s" => b(0, 1, |_| S),
        "sdg" => b(0, 1, |_| Sdg),
        "t" => b(0, 1, |_| T),
        "tdg" => b(0, 1, |_| Tdg),
        "sx" => b(0, 1, |_| Sx),
        "sxdg" => b(0, 1, |_| Sxdg),
        "rx" => b(1, 1, |p| Rx(p[0])),
        "ry" => b(1, 1, |p| Ry(p[0])),
        "rz" => b(1, 1, |p| Rz(p[0])),
        "p" | "u1" => b(1, 1, |p| P(p[0])),
        "u2" => b(2, 1, |p| U2(p[0], p[1])),
        "u3" | "u" => b(3, 1, |p| U3(p[0], p[1], p[2])),
        "cx" => b(0, 2, |_| Cx),
        "cy" => b(0, 2, |_| Cy),
        "cz" => b(0, 2, |_| Cz),
        "ch" => b(0, 2, |_| Ch),
        "swap" => b(0, 2, |_| Swap),
        "crx" => b(1, 2, |p| Crx(p[0])),
        "cry" => b(1, 2, |p| Cry(p[0])),
        "crz" => b(1, 2, |p| Crz(p[0])),
        "cp" | "cu1" => b(1, 2, |p| Cp(p[0])),
        "cu3" => b(3, 2, |p| Cu3(p[0], p[1], p[2])),
        "ccx" => b(0, 3, |_| Ccx),
        "cswap" => b(0, 3, |_| Cswap),
        "rxx" => b(1, 2, |p| Rxx(p[0])),
        "rzz" => b(1, 2, |p| Rzz(p[0])),
        _ => None,
    }
}

fn language_gate(name: &str) -> Option<Builtin> {
    match name {
        "U" => Some(Builtin {
            num_params: 3,
            num_qubits: 1,
            make: |p| Gate::U3(p[0], p[1], p[2]),
        }),
        "CX" => Some(Builtin {
            num_params: 0,
            num_qubits: 2,
            make: |_| Gate::Cx,
        }),
        _ => None,
    }
}

/// `qelib1.inc` gates that quargo does not model yet: named so the error says so.
const UNMODELLED_LIBRARY_GATES: [&str; 7] = ["csx", "cu", "rccx", "rc3x", "c3x", "c3sqrtx", "c4x"];

const RESERVED: [&str; 13] = [
    "OPENQASM", "include", "qreg", "creg", "gate", "opaque", "barrier", "measure", "reset", "if",
    "U", "CX", "pi",
];

/// A qubit argument at a call site: a whole register or one qubit of it.
enum Arg {
    Register { offset: usize, size: usize },
    Qubit(usize),
}

/// A gate application read, pushed into the circuit once the whole program parsed.
struct PendingGate {
    gate: Gate,
    qubits: Vec<usize>,
    /// Where it was written, for the error if the circuit refuses it.
    pos: Pos,
}

struct Parser<'a> {
    toks: Vec<(Tok<'a>, Pos)>,
    at: usize,
    cregs: HashMap<String, usize>,
    qregs: HashMap<String, (usize, usize)>,
    qreg_order: Vec<(String, usize)>,
    user_gates: HashMap<String, UserGate>,
    opaque: HashMap<String, Pos>,
    library: bool,
    pending: Vec<PendingGate>,
    /// Operators and functions in the expression being parsed.
    expr_operations: usize,
    /// Most gates the program may expand to (refused before expanding).
    max_instructions: usize,
}

/// Parses an OpenQASM 2 program.
pub fn parse(src: &str) -> Result<Circuit, ParseError> {
    parse_limited(src, MAX_INSTRUCTIONS)
}

/// [`parse`], refusing programs that expand to more than `max_gates` gates before expanding them
/// (a few hundred bytes of nested definitions can stand for millions of gates).
pub fn parse_limited(src: &str, max_gates: usize) -> Result<Circuit, ParseError> {
    let toks = lex(src)?;
    let mut p = Parser {
        toks,
        at: 0,
        cregs: HashMap::new(),
        qregs: HashMap::new(),
        qreg_order: Vec::new(),
        user_gates: HashMap::new(),
        opaque: HashMap::new(),
        library: false,
        pending: Vec::new(),
        expr_operations: 0,
        max_instructions: max_gates.min(MAX_INSTRUCTIONS),
    };
    p.program()?;
    p.finish()
}

/// Largest OpenQASM file read (larger ones, or endless ones such as `/dev/zero`, are refused
/// after reading this much).
pub const MAX_FILE_BYTES: u64 = 256 << 20;

/// Reads and parses an OpenQASM 2 file.
pub fn parse_file(path: &std::path::Path) -> Result<Circuit, QasmFileError> {
    use std::io::Read;
    let read_error = |error| QasmFileError::Read {
        path: path.display().to_string(),
        error,
    };
    let file = std::fs::File::open(path).map_err(read_error)?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(QasmFileError::TooLarge {
            path: path.display().to_string(),
            limit: MAX_FILE_BYTES,
        });
    }
    let src = String::from_utf8(bytes).map_err(|_| {
        read_error(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "the file is not UTF-8 text",
        ))
    })?;
    parse(&src).map_err(|error| QasmFileError::Parse {
        path: path.display().to_string(),
        error,
    })
}

/// Reading or parsing a file failed. The cause is part of the message (not a separate error
/// source), so `{:#}` chains print it once.
#[derive(Debug, Error)]
pub enum QasmFileError {
    #[error("cannot read {path}: {error}")]
    Read { path: String, error: std::io::Error },
    #[error("{path} is larger than {limit} bytes, the most an OpenQASM file may have")]
    TooLarge { path: String, limit: u64 },
    #[error("{path}: {error}")]
    Parse { path: String, error: ParseError },
}

impl<'a> Parser<'a> {
    fn peek(&self) -> &Tok<'a> {
        &self.toks[self.at].0
    }

    fn pos(&self) -> Pos {
        self.toks[self.at].1
    }

    fn next(&mut self) -> (Tok<'a>, Pos) {
        let t = self.toks[self.at];
        if self.at + 1 < self.toks.len() {
            self.at += 1;
        }
        t
    }

    fn is_sym(&self, s: &str) -> bool {
        matches!(self.peek(), Tok::Sym(x) if *x == s)
    }

    fn expect_sym(&mut self, s: &str, context: &str) -> Result<Pos, ParseError> {
        if self.is_sym(s) {
            return Ok(self.next().1);
        }
        let pos = self.pos();
        // A missing ';' is best reported right after the previous token, where it belongs.
        let (at, found) = if s == ";" && self.at > 0 {
            (self.end_of_previous(), format!(", found {}", self.peek()))
        } else {
            (pos, format!(", found {}", self.peek()))
        };
        Err(error(
            at,
            ErrorKind::Syntax,
            format!("expected '{s}' {context}{found}"),
        ))
    }

    fn end_of_previous(&self) -> Pos {
        let (tok, pos) = &self.toks[self.at - 1];
        let len = match tok {
            Tok::Ident(s) => s.len(),
            Tok::Sym(s) => s.len(),
            Tok::Str(s) => s.len() + 2,
            Tok::Int(v) => v.to_string().len(),
            _ => 1,
        };
        Pos {
            line: pos.line,
            column: pos.column + len,
        }
    }

    fn ident(&mut self, what: &str) -> Result<(String, Pos), ParseError> {
        match self.next() {
            (Tok::Ident(s), p) => Ok((s.to_string(), p)),
            (t, p) => Err(error(
                p,
                ErrorKind::Syntax,
                format!("expected {what}, found {t}"),
            )),
        }
    }

    fn int(&mut self, what: &str) -> Result<(u64, Pos), ParseError> {
        match self.next() {
            (Tok::Int(v), p) => Ok((v, p)),
            (t, p) => Err(error(
                p,
                ErrorKind::Syntax,
                format!("expected {what}, found {t}"),
            )),
        }
    }

    fn program(&mut self) -> Result<(), ParseError> {
        if matches!(self.peek(), Tok::Ident(s) if *s == "OPENQASM") {
            self.next();
            match self.next() {
                (Tok::Real(2.0), _) => {}
                (Tok::Int(2), _) => {}
                (t, p) => {
                    return Err(error(
                        p,
                        ErrorKind::Unsupported,
                        format!("only OpenQASM 2.0 is supported, found version {t}"),
                    ))
                }
            }
            self.expect_sym(";", "after the version")?;
        }
        while *self.peek() != Tok::Eof {
            self.statement()?;
        }
        Ok(())
    }

    fn statement(&mut self) -> Result<(), ParseError> {
        let (tok, pos) = self.toks[self.at];
        let word = match tok {
            Tok::Ident(w) => w,
            t => {
                return Err(error(
                    pos,
                    ErrorKind::Syntax,
                    format!("expected a statement, found {t}"),
                ))
            }
        };
        match word {
            "OPENQASM" => Err(error(
                pos,
                ErrorKind::Syntax,
                "OPENQASM must be the first statement",
            )),
            "include" => self.include(),
            "qreg" | "creg" => self.register(word == "qreg"),
            "gate" => self.gate_definition(),
            "opaque" => self.opaque_declaration(),
            "barrier" => {
                self.next();
                self.arg_list()?;
                self.expect_sym(";", "after barrier")?;
                Ok(())
            }
            "measure" => self.measure(),
            "reset" => Err(error(
                pos,
                ErrorKind::Unsupported,
                "reset is not supported: quargo simulates unitary circuits",
            )),
            "if" => Err(error(
                pos,
                ErrorKind::Unsupported,
                "classically controlled operations (if) are not supported",
            )),
            _ => self.gate_call(),
        }
    }

    fn include(&mut self) -> Result<(), ParseError> {
        self.next();
        let (tok, pos) = self.next();
        let Tok::Str(file) = tok else {
            return Err(error(
                pos,
                ErrorKind::Syntax,
                format!("expected a file name in quotes, found {tok}"),
            ));
        };
        if file != "qelib1.inc" {
            return Err(error(
                pos,
                ErrorKind::Unsupported,
                format!("cannot include \"{file}\": only \"qelib1.inc\" is available"),
            ));
        }
        self.expect_sym(";", "after include")?;
        self.library = true;
        Ok(())
    }

    fn register(&mut self, quantum: bool) -> Result<(), ParseError> {
        self.next();
        let (name, pos) = self.ident("a register name")?;
        self.expect_sym("[", "before the register size")?;
        let (size, size_pos) = self.int("the register size")?;
        self.expect_sym("]", "after the register size")?;
        self.expect_sym(";", "after the register declaration")?;
        if size == 0 {
            return Err(error(
                size_pos,
                ErrorKind::Invalid,
                format!("register '{name}' has size 0"),
            ));
        }
        if self.qregs.contains_key(&name) || self.cregs.contains_key(&name) {
            return Err(error(
                pos,
                ErrorKind::Redefinition,
                format!("register '{name}' is already declared"),
            ));
        }
        let size = usize::try_from(size)
            .ok()
            .filter(|&s| s <= 1 << 20)
            .ok_or_else(|| {
                error(
                    size_pos,
                    ErrorKind::TooLarge,
                    format!("register '{name}' is too large"),
                )
            })?;
        if quantum {
            if !self.pending.is_empty() {
                return Err(error(
                    pos,
                    ErrorKind::Unsupported,
                    "qreg declarations must come before the first gate",
                ));
            }
            let offset = self.qreg_order.iter().map(|r| r.1).sum();
            self.qregs.insert(name.clone(), (offset, size));
            self.qreg_order.push((name, size));
        } else {
            self.cregs.insert(name, size);
        }
        Ok(())
    }

    fn measure(&mut self) -> Result<(), ParseError> {
        self.next();
        let q = self.qubit_arg()?;
        self.expect_sym("->", "in measure")?;
        let (name, pos) = self.ident("a classical register")?;
        let Some(&size) = self.cregs.get(&name) else {
            return Err(error(
                pos,
                ErrorKind::UndeclaredRegister,
                format!("classical register '{name}' is not declared"),
            ));
        };
        let c_len = if self.is_sym("[") {
            self.next();
            let (idx, ipos) = self.int("a bit index")?;
            self.expect_sym("]", "after the bit index")?;
            if idx as usize >= size {
                return Err(error(
                    ipos,
                    ErrorKind::IndexOutOfRange,
                    format!("bit {idx} is out of range for '{name}[{size}]'"),
                ));
            }
            1
        } else {
            size
        };
        let q_len = match q {
            Arg::Register { size, .. } => size,
            Arg::Qubit(_) => 1,
        };
        if q_len != c_len {
            return Err(error(
                pos,
                ErrorKind::Invalid,
                format!("measure maps {q_len} qubit(s) to {c_len} bit(s)"),
            ));
        }
        self.expect_sym(";", "after measure")?;
        Ok(())
    }

    fn opaque_declaration(&mut self) -> Result<(), ParseError> {
        self.next();
        let (name, pos) = self.ident("a gate name")?;
        if self.is_sym("(") {
            self.next();
            while !self.is_sym(")") {
                self.ident("a parameter name")?;
                if !self.is_sym(",") {
                    break;
                }
                self.next();
            }
            self.expect_sym(")", "after the parameters")?;
        }
        loop {
            self.ident("a qubit name")?;
            if !self.is_sym(",") {
                break;
            }
            self.next();
        }
        self.expect_sym(";", "after the opaque declaration")?;
        self.opaque.insert(name, pos);
        Ok(())
    }

    fn gate_definition(&mut self) -> Result<(), ParseError> {
        self.next();
        let (name, pos) = self.ident("a gate name")?;
        if RESERVED.contains(&name.as_str()) {
            return Err(error(
                pos,
                ErrorKind::Redefinition,
                format!("'{name}' is a reserved word"),
            ));
        }
        if self.user_gates.contains_key(&name) || self.opaque.contains_key(&name) {
            return Err(error(
                pos,
                ErrorKind::Redefinition,
                format!("gate '{name}' is already defined"),
            ));
        }
        let mut params = Vec::new();
        if self.is_sym("(") {
            self.next();
            if !self.is_sym(")") {
                loop {
                    let (p, ppos) = self.ident("a parameter name")?;
                    if params.contains(&p) {
                        return Err(error(
                            ppos,
                            ErrorKind::Redefinition,
                            format!("parameter '{p}' is declared twice"),
                        ));
                    }
                    params.push(p);
                    if !self.is_sym(",") {
                        break;
                    }
                    self.next();
                }
            }
            self.expect_sym(")", "after the gate parameters")?;
        }
        let mut qargs: Vec<String> = Vec::new();
        loop {
            let (q, qpos) = self.ident("a qubit name")?;
            if qargs.contains(&q) {
                return Err(error(
                    qpos,
                    ErrorKind::Redefinition,
                    format!("qubit argument '{q}' is declared twice"),
                ));
            }
            qargs.push(q);
            if !self.is_sym(",") {
                break;
            }
            self.next();
        }
        self.expect_sym("{", "to open the gate body")?;
        let mut body = Vec::new();
        while !self.is_sym("}") {
            if *self.peek() == Tok::Eof {
                return Err(error(
                    self.pos(),
                    ErrorKind::Syntax,
                    format!("gate '{name}' body is not closed with '}}'"),
                ));
            }
            if let Some(call) = self.body_statement(&params, &qargs)? {
                body.push(call);
            }
        }
        self.next();
        let expanded = body.iter().fold(0u64, |acc, call| {
            acc.saturating_add(match &call.target {
                GateRef::Builtin(_) => 1,
                GateRef::User(n) => self.user_gates.get(n).map_or(0, |g| g.expanded),
            })
        });
        let nesting = 1 + body
            .iter()
            .filter_map(|call| match &call.target {
                GateRef::User(n) => self.user_gates.get(n).map(|g| g.nesting),
                GateRef::Builtin(_) => None,
            })
            .max()
            .unwrap_or(0);
        if nesting > MAX_GATE_NESTING {
            return Err(error(
                pos,
                ErrorKind::TooLarge,
                format!("gate '{name}' nests gate definitions more than {MAX_GATE_NESTING} deep"),
            ));
        }
        self.user_gates.insert(
            name,
            UserGate {
                num_params: params.len(),
                num_qubits: qargs.len(),
                body,
                expanded,
                nesting,
            },
        );
        Ok(())
    }

    fn body_statement(
        &mut self,
        params: &[String],
        qargs: &[String],
    ) -> Result<Option<BodyCall>, ParseError> {
        let (name, pos) = self.ident("a gate call")?;
        let read_args = |p: &mut Parser<'a>| -> Result<Vec<usize>, ParseError> {
            let mut args = Vec::new();
            loop {
                let (q, qpos) = p.ident("a qubit argument")?;
                let Some(k) = qargs.iter().position(|a| *a == q) else {
                    return Err(error(
                        qpos,
                        ErrorKind::UndeclaredRegister,
                        format!("'{q}' is not a qubit argument of this gate"),
                    ));
                };
                if p.is_sym("[") {
                    return Err(error(
                        p.pos(),
                        ErrorKind::Syntax,
                        "qubits inside a gate body cannot be indexed",
                    ));
                }
                args.push(k);
                if !p.is_sym(",") {
                    return Ok(args);
                }
                p.next();
            }
        };
        if name == "barrier" {
            read_args(self)?;
            self.expect_sym(";", "after barrier")?;
            return Ok(None);
        }
        if matches!(
            name.as_str(),
            "measure" | "reset" | "if" | "creg" | "qreg" | "gate"
        ) {
            return Err(error(
                pos,
                ErrorKind::Unsupported,
                format!("'{name}' is not allowed inside a gate body"),
            ));
        }
        let (target, num_params, num_qubits) = self.resolve(&name, pos)?;
        let exprs = self.call_params(params)?;
        if exprs.len() != num_params {
            return Err(error(
                pos,
                ErrorKind::Arity,
                format!(
                    "gate '{name}' takes {num_params} parameter(s), got {}",
                    exprs.len()
                ),
            ));
        }
        let args = read_args(self)?;
        if args.len() != num_qubits {
            return Err(error(
                pos,
                ErrorKind::Arity,
                format!(
                    "gate '{name}' takes {num_qubits} qubit(s), got {}",
                    args.len()
                ),
            ));
        }
        for (k, a) in args.iter().enumerate() {
            if args[..k].contains(a) {
                return Err(error(
                    pos,
                    ErrorKind::Invalid,
                    format!("gate '{name}' uses qubit argument '{}' twice", qargs[*a]),
                ));
            }
        }
        self.expect_sym(";", "after the gate call")?;
        Ok(Some(BodyCall {
            target,
            params: exprs,
            args,
        }))
    }

    /// Finds a gate by name: user definitions first, then the language's `U`/`CX`, then the library.
    fn resolve(&self, name: &str, pos: Pos) -> Result<(GateRef, usize, usize), ParseError> {
        if let Some(g) = self.user_gates.get(name) {
            return Ok((GateRef::User(name.to_string()), g.num_params, g.num_qubits));
        }
        if let Some(b) = language_gate(name) {
            return Ok((GateRef::Builtin(b), b.num_params, b.num_qubits));
        }
        if self.opaque.contains_key(name) {
            return Err(error(
                pos,
                ErrorKind::Unsupported,
                format!("opaque gate '{name}' has no definition and cannot be simulated"),
            ));
        }
        if self.library {
            if let Some(b) = library_gate(name) {
                return Ok((GateRef::Builtin(b), b.num_params, b.num_qubits));
            }
            if UNMODELLED_LIBRARY_GATES.contains(&name) {
                return Err(error(pos, ErrorKind::Unsupported, format!("gate '{name}' of qelib1.inc is not supported yet; define it with a gate block")));
            }
        }
        let hint = if !self.library && library_gate(name).is_some() {
            " (add `include \"qelib1.inc\";` to use the standard gates)"
        } else {
            ""
        };
        Err(error(
            pos,
            ErrorKind::UnknownGate,
            format!("unknown gate '{name}'{hint}"),
        ))
    }

    fn call_params(&mut self, params: &[String]) -> Result<Vec<Expr>, ParseError> {
        let mut exprs = Vec::new();
        if !self.is_sym("(") {
            return Ok(exprs);
        }
        self.next();
        if self.is_sym(")") {
            self.next();
            return Ok(exprs);
        }
        loop {
            self.expr_operations = 0;
            exprs.push(self.expr(params, 0)?);
            if !self.is_sym(",") {
                break;
            }
            self.next();
        }
        self.expect_sym(")", "after the gate parameters")?;
        Ok(exprs)
    }

    fn expr(&mut self, params: &[String], depth: usize) -> Result<Expr, ParseError> {
        self.left_associative(params, depth, ["+", "-"], Self::term)
    }

    fn term(&mut self, params: &[String], depth: usize) -> Result<Expr, ParseError> {
        self.left_associative(params, depth, ["*", "/"], Self::unary)
    }

    /// `operand (op operand)*` for one precedence level, folded to the left.
    fn left_associative(
        &mut self,
        params: &[String],
        depth: usize,
        ops: [&str; 2],
        operand: fn(&mut Self, &[String], usize) -> Result<Expr, ParseError>,
    ) -> Result<Expr, ParseError> {
        let mut lhs = operand(self, params, depth)?;
        while let Tok::Sym(s) = *self.peek() {
            if !ops.contains(&s) {
                break;
            }
            self.next();
            self.operation()?;
            let rhs = operand(self, params, depth)?;
            let op = s.chars().next().unwrap_or('+');
            lhs = Expr::Bin(op, Box::new(lhs), Box::new(rhs));
        }
        Ok(lhs)
    }

    /// Counts one operator or function of the current expression, refusing too many.
    fn operation(&mut self) -> Result<(), ParseError> {
        self.expr_operations += 1;
        if self.expr_operations > MAX_EXPR_OPERATIONS {
            return Err(error(
                self.pos(),
                ErrorKind::TooLarge,
                format!("expression has more than {MAX_EXPR_OPERATIONS} operations"),
            ));
        }
        Ok(())
    }

    fn unary(&mut self, params: &[String], depth: usize) -> Result<Expr, ParseError> {
        if depth > MAX_EXPR_DEPTH {
            return Err(error(
                self.pos(),
                ErrorKind::TooLarge,
                "expression is nested too deeply",
            ));
        }
        match self.peek() {
            Tok::Sym("-") => {
                self.next();
                self.operation()?;
                Ok(Expr::Neg(Box::new(self.unary(params, depth + 1)?)))
            }
            Tok::Sym("+") => {
                self.next();
                self.unary(params, depth + 1)
            }
            _ => self.power(params, depth),
        }
    }

    /// `^` binds tighter than unary minus and associates to the right: `-2^2 = -4`, `2^3^2 = 512`.
    fn power(&mut self, params: &[String], depth: usize) -> Result<Expr, ParseError> {
        let base = self.primary(params, depth)?;
        if self.is_sym("^") {
            self.next();
            self.operation()?;
            let exp = self.unary(params, depth + 1)?;
            return Ok(Expr::Bin('^', Box::new(base), Box::new(exp)));
        }
        Ok(base)
    }

    fn primary(&mut self, params: &[String], depth: usize) -> Result<Expr, ParseError> {
        let (tok, pos) = self.next();
        match tok {
            Tok::Int(v) => Ok(Expr::Num(v as f64)),
            Tok::Real(v) => Ok(Expr::Num(v)),
            Tok::Sym("(") => {
                let e = self.expr(params, depth + 1)?;
                self.expect_sym(")", "to close the parenthesis")?;
                Ok(e)
            }
            Tok::Ident(name) => {
                if name == "pi" {
                    return Ok(Expr::Num(std::f64::consts::PI));
                }
                if let Some(k) = params.iter().position(|p| *p == name) {
                    return Ok(Expr::Param(k));
                }
                let func = match name {
                    "sin" => Func::Sin,
                    "cos" => Func::Cos,
                    "tan" => Func::Tan,
                    "exp" => Func::Exp,
                    "ln" => Func::Ln,
                    "sqrt" => Func::Sqrt,
                    _ => {
                        return Err(error(
                            pos,
                            ErrorKind::Syntax,
                            format!("unknown identifier '{name}' in expression"),
                        ))
                    }
                };
                self.expect_sym("(", &format!("after '{name}'"))?;
                self.operation()?;
                let e = self.expr(params, depth + 1)?;
                self.expect_sym(")", &format!("to close '{name}('"))?;
                Ok(Expr::Func(func, Box::new(e)))
            }
            t => Err(error(
                pos,
                ErrorKind::Syntax,
                format!("expected an expression, found {t}"),
            )),
        }
    }

    fn qubit_arg(&mut self) -> Result<Arg, ParseError> {
        let (name, pos) = self.ident("a quantum register")?;
        let Some(&(offset, size)) = self.qregs.get(&name) else {
            let what = if self.cregs.contains_key(&name) {
                format!("'{name}' is a classical register, not a quantum one")
            } else {
                format!("quantum register '{name}' is not declared")
            };
            return Err(error(pos, ErrorKind::UndeclaredRegister, what));
        };
        if !self.is_sym("[") {
            return Ok(Arg::Register { offset, size });
        }
        self.next();
        let (idx, ipos) = self.int("a qubit index")?;
        self.expect_sym("]", "after the qubit index")?;
        if idx >= size as u64 {
            return Err(error(
                ipos,
                ErrorKind::IndexOutOfRange,
                format!("qubit {idx} is out of range for '{name}[{size}]'"),
            ));
        }
        Ok(Arg::Qubit(offset + idx as usize))
    }

    fn arg_list(&mut self) -> Result<Vec<Arg>, ParseError> {
        let mut args = vec![self.qubit_arg()?];
        while self.is_sym(",") {
            self.next();
            args.push(self.qubit_arg()?);
        }
        Ok(args)
    }

    fn gate_call(&mut self) -> Result<(), ParseError> {
        let (name, pos) = self.ident("a gate name")?;
        let (target, num_params, num_qubits) = self.resolve(&name, pos)?;
        let exprs = self.call_params(&[])?;
        if exprs.len() != num_params {
            return Err(error(
                pos,
                ErrorKind::Arity,
                format!(
                    "gate '{name}' takes {num_params} parameter(s), got {}",
                    exprs.len()
                ),
            ));
        }
        let values: Vec<f64> = exprs.iter().map(|e| e.eval(&[])).collect();
        let args = self.arg_list()?;
        if args.len() != num_qubits {
            return Err(error(
                pos,
                ErrorKind::Arity,
                format!(
                    "gate '{name}' takes {num_qubits} qubit(s), got {}",
                    args.len()
                ),
            ));
        }
        self.expect_sym(";", "after the gate call")?;
        let per_call = match &target {
            GateRef::Builtin(_) => 1,
            GateRef::User(n) => self.user_gates.get(n).map_or(0, |g| g.expanded),
        };
        let calls = args.iter().map(|a| match a {
            Arg::Register { size, .. } => *size as u64,
            Arg::Qubit(_) => 1,
        });
        let total = per_call
            .saturating_mul(calls.max().unwrap_or(1))
            .saturating_add(self.pending.len() as u64);
        if total > self.max_instructions as u64 {
            return Err(error(
                pos,
                ErrorKind::TooLarge,
                format!(
                    "program expands to more than {} gates",
                    self.max_instructions
                ),
            ));
        }
        // Broadcast: registers of equal size apply the gate qubit by qubit.
        let mut width = None;
        for a in &args {
            if let Arg::Register { size, .. } = a {
                match width {
                    None => width = Some(*size),
                    Some(w) if w != *size => {
                        return Err(error(pos, ErrorKind::Invalid, format!("gate '{name}' is broadcast over registers of different sizes ({w} and {size})")));
                    }
                    _ => {}
                }
            }
        }
        for k in 0..width.unwrap_or(1) {
            let qubits: Vec<usize> = args
                .iter()
                .map(|a| match a {
                    Arg::Register { offset, .. } => offset + k,
                    Arg::Qubit(q) => *q,
                })
                .collect();
            if let Some(dup) = qubits
                .iter()
                .enumerate()
                .find(|(i, q)| qubits[..*i].contains(q))
            {
                return Err(error(
                    pos,
                    ErrorKind::Invalid,
                    format!("gate '{name}' uses qubit {} twice", dup.1),
                ));
            }
            self.expand(&target, &values, &qubits, pos)?;
        }
        Ok(())
    }

    fn expand(
        &mut self,
        target: &GateRef,
        values: &[f64],
        qubits: &[usize],
        pos: Pos,
    ) -> Result<(), ParseError> {
        match target {
            GateRef::Builtin(b) => {
                if self.pending.len() >= self.max_instructions {
                    return Err(error(
                        pos,
                        ErrorKind::TooLarge,
                        format!(
                            "program expands to more than {} gates",
                            self.max_instructions
                        ),
                    ));
                }
                let gate = (b.make)(values);
                if let Some(bad) = gate.params().into_iter().find(|v| !v.is_finite()) {
                    return Err(error(
                        pos,
                        ErrorKind::Invalid,
                        format!(
                            "gate '{}' has a parameter that is not a finite number ({bad})",
                            gate.name()
                        ),
                    ));
                }
                self.pending.push(PendingGate {
                    gate,
                    qubits: qubits.to_vec(),
                    pos,
                });
                Ok(())
            }
            GateRef::User(name) => {
                let Some(def) = self.user_gates.get(name) else {
                    return Err(error(
                        pos,
                        ErrorKind::UnknownGate,
                        format!("unknown gate '{name}'"),
                    ));
                };
                let body = def.body.clone();
                for call in &body {
                    let vals: Vec<f64> = call.params.iter().map(|e| e.eval(values)).collect();
                    let qs: Vec<usize> = call.args.iter().map(|&a| qubits[a]).collect();
                    self.expand(&call.target, &vals, &qs, pos)?;
                }
                Ok(())
            }
        }
    }

    fn finish(self) -> Result<Circuit, ParseError> {
        let mut circuit = Circuit::with_registers(self.qreg_order);
        for PendingGate { gate, qubits, pos } in self.pending {
            circuit
                .push(gate, &qubits)
                .map_err(|e: CircuitError| error(pos, ErrorKind::Invalid, e.to_string()))?;
        }
        Ok(circuit)
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn circuits_round_trip_through_their_qasm_text() {
        let every_gate = "OPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg a[2];\nqreg b[2];\n\
            id a[0]; x a[0]; y a[1]; z b[0]; h b[1]; s a[0]; sdg a[0]; t a[1]; tdg a[1]; sx b[0]; sxdg b[0];\n\
            rx(1e-7) a[0]; ry(-0.3) a[1]; rz(pi/3) b[0]; p(2.5) b[1]; u1(0.1) a[0]; u2(0.2,-0.3) a[1];\n\
            u3(0.1,0.2,0.3) b[0]; u(1,2,3) b[1]; U(0.5,0.25,0.125) a[0];\n\
            cx a[0],b[1]; CX b[1],a[0]; cy a[1],b[0]; cz b[0],b[1]; ch a[0],a[1]; swap a[0],b[0];\n\
            crx(0.7) a[0],a[1]; cry(-1e-9) a[1],b[0]; crz(3) b[0],b[1]; cp(0.01) a[0],b[1]; cu1(0.02) a[1],a[0];\n\
            cu3(0.1,0.2,0.3) a[0],b[0]; ccx a[0],a[1],b[0]; cswap b[1],a[0],a[1]; rxx(0.4) a[0],b[1]; rzz(1e10) a[1],b[0];\n";
        let c = parse(every_gate).expect("parses");
        let text = c.to_qasm();
        let again = parse(&text).expect("its text parses");
        assert_eq!(again.instructions(), c.instructions());
        assert_eq!(again.num_qubits(), c.num_qubits());
        assert_eq!(again.content_id(), c.content_id());
    }
    use super::*;

    fn err(src: &str) -> ParseError {
        parse(src).expect_err("program should be rejected")
    }

    const HEAD: &str = "OPENQASM 2.0;\ninclude \"qelib1.inc\";\n";

    #[test]
    fn parses_registers_gates_and_broadcast() {
        let c = parse(&format!("{HEAD}qreg a[2];\nqreg b[3];\ncreg c[5];\ncreg d[3];\nh a;\ncx a[1], b[0];\nrz(-pi/4) b;\nbarrier a, b;\nmeasure a[1] -> c[4];\nmeasure b -> d;\n"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.num_qubits(), 5);
    }

    #[test]
    fn lays_out_registers_in_declaration_order() {
        let c = parse(&format!(
            "{HEAD}qreg a[2];\nqreg b[3];\nh a;\ncx a[1], b[0];\nrz(-pi/4) b;\n"
        ))
        .unwrap();
        assert_eq!(c.num_qubits(), 5);
        assert_eq!(c.len(), 2 + 1 + 3);
        assert_eq!(c.instructions()[2].qubits, vec![1, 2]);
        assert_eq!(
            c.instructions()[3].gate,
            Gate::Rz(-std::f64::consts::PI / 4.0)
        );
        assert_eq!(c.instructions()[5].qubits, vec![4]);
    }

    #[test]
    fn evaluates_expressions_with_full_precision() {
        let c = parse(&format!(
            "{HEAD}qreg q[1];\nrz(0.1234567890123) q[0];\nrz(1e-5) q[0];\nrz(-2^2) q[0];\nrz(2^3^2) q[0];\nrz(sin(pi/2) + cos(0)*sqrt(4) - ln(exp(1)) / tan(pi/4)) q[0];\nrz(.5) q[0];\nrz(3.) q[0];\n"
        ))
        .unwrap();
        let angles: Vec<f64> = c
            .instructions()
            .iter()
            .map(|i| i.gate.params()[0])
            .collect();
        assert_eq!(angles[0], 0.1234567890123);
        assert_eq!(angles[1], 1e-5);
        assert_eq!(angles[2], -4.0);
        assert_eq!(angles[3], 512.0);
        assert!((angles[4] - 2.0).abs() < 1e-15);
        assert_eq!(angles[5], 0.5);
        assert_eq!(angles[6], 3.0);
    }

    #[test]
    fn inlines_user_gates_with_parameters() {
        let c = parse(&format!(
            "{HEAD}gate my_rzz(theta) a, b {{ cx a, b; rz(theta/2) b; CX a, b; }}\ngate wrap(x) p, q {{ my_rzz(2*x) q, p; barrier p; U(x, 0, pi) p; }}\nqreg q[3];\nwrap(0.5) q[0], q[2];\n"
        ))
        .unwrap();
        let got: Vec<(Gate, Vec<usize>)> = c
            .instructions()
            .iter()
            .map(|i| (i.gate, i.qubits.clone()))
            .collect();
        assert_eq!(
            got,
            vec![
                (Gate::Cx, vec![2, 0]),
                (Gate::Rz(0.5), vec![0]),
                (Gate::Cx, vec![2, 0]),
                (Gate::U3(0.5, 0.0, std::f64::consts::PI), vec![0]),
            ]
        );
    }

    #[test]
    fn errors_carry_line_column_and_kind() {
        let e = err(&format!("{HEAD}qreg q[2];\nfoo q[0];\n"));
        assert_eq!((e.line, e.column, e.kind), (4, 1, ErrorKind::UnknownGate));
        let e = err(&format!("{HEAD}qreg q[2];\ncx q[0];\n"));
        assert_eq!((e.line, e.kind), (4, ErrorKind::Arity));
        let e = err(&format!("{HEAD}qreg q[2];\nh r[0];\n"));
        assert_eq!(
            (e.line, e.column, e.kind),
            (4, 3, ErrorKind::UndeclaredRegister)
        );
        let e = err(&format!("{HEAD}qreg q[2];\nh q[2];\n"));
        assert_eq!(
            (e.line, e.column, e.kind),
            (4, 5, ErrorKind::IndexOutOfRange)
        );
        let e = err(&format!("{HEAD}qreg q[2];\nrz(1.2.3) q[0];\n"));
        assert_eq!(
            (e.line, e.column, e.kind),
            (4, 4, ErrorKind::MalformedNumber)
        );
        let e = err(&format!("{HEAD}qreg q[2];\nrz(1e) q[0];\n"));
        assert_eq!(e.kind, ErrorKind::MalformedNumber);
        let e = err(&format!("{HEAD}qreg q[2];\nh q[0]\nx q[1];\n"));
        assert_eq!((e.line, e.column, e.kind), (4, 7, ErrorKind::Syntax));
        assert!(e.message.contains("expected ';'"), "{}", e.message);
        let e = err(&format!("{HEAD}qreg q[2];\nreset q[0];\n"));
        assert_eq!(e.kind, ErrorKind::Unsupported);
        let e = err(&format!(
            "{HEAD}qreg q[2];\ncreg c[2];\nif (c==1) x q[0];\n"
        ));
        assert_eq!(e.kind, ErrorKind::Unsupported);
        let e = err("OPENQASM 3.0;\nqubit q;\n");
        assert_eq!(e.kind, ErrorKind::Unsupported);
        let e = err("OPENQASM 2.0;\nqreg q[1];\nh q[0];\n");
        assert_eq!(e.kind, ErrorKind::UnknownGate);
        assert!(e.message.contains("qelib1.inc"), "{}", e.message);
        let e = err(&format!("{HEAD}qreg q[2];\ncx q[0], q[0];\n"));
        assert_eq!(e.kind, ErrorKind::Invalid);
        let e = err(&format!("{HEAD}qreg q[2];\nqreg r[3];\ncx q, r;\n"));
        assert_eq!(e.kind, ErrorKind::Invalid);
        let e = err(&format!("{HEAD}qreg q[2];\nrx(0.1, 0.2) q[0];\n"));
        assert_eq!(e.kind, ErrorKind::Arity);
        let e = err(&format!("{HEAD}qreg q[2];\nopaque magic a;\nmagic q[0];\n"));
        assert_eq!(e.kind, ErrorKind::Unsupported);
        let e = err(&format!("{HEAD}qreg q[1];\nrz(ln(0)) q[0];\n"));
        assert_eq!(e.kind, ErrorKind::Invalid);
        let e = err(&format!("{HEAD}qreg q[1];\nrz(theta) q[0];\n"));
        assert_eq!(e.kind, ErrorKind::Syntax);
        let e = err(&format!("{HEAD}gate g a {{ h b; }}\n"));
        assert_eq!(e.kind, ErrorKind::UndeclaredRegister);
        let e = err(&format!("{HEAD}include \"other.inc\";\n"));
        assert_eq!(e.kind, ErrorKind::Unsupported);
        let e = err(&format!("{HEAD}qreg q[1];\nc3x q[0];\n"));
        assert_eq!(e.kind, ErrorKind::Unsupported);
    }

    #[test]
    fn deep_or_exploding_programs_are_refused_not_crashed() {
        let deep = format!(
            "{HEAD}qreg q[1];\nrz({}1{}) q[0];\n",
            "(".repeat(5000),
            ")".repeat(5000)
        );
        assert_eq!(err(&deep).kind, ErrorKind::TooLarge);
        let mut src = format!("{HEAD}qreg q[1];\ngate g0 a {{ x a; x a; }}\n");
        for k in 1..40 {
            src += &format!("gate g{k} a {{ g{} a; g{} a; }}\n", k - 1, k - 1);
        }
        src += "g39 q[0];\n";
        assert_eq!(err(&src).kind, ErrorKind::TooLarge);
    }

    #[test]
    fn long_flat_expressions_are_refused_not_overflowing_the_stack() {
        // Parsed by a loop, but each would build a tree as deep as it is long.
        for op in ["+", "*", "-", "/", "^"] {
            let long = vec!["1"; 200_000].join(op);
            let call = format!("{HEAD}qreg q[1];\nrx({long}) q[0];\n");
            let e = err(&call);
            assert_eq!(e.kind, ErrorKind::TooLarge, "{op}: {e}");
            let in_body =
                format!("{HEAD}qreg q[1];\ngate g(t) a {{ rx({long}) a; }}\ng(1) q[0];\n");
            assert_eq!(
                err(&in_body).kind,
                ErrorKind::TooLarge,
                "{op} in a gate body"
            );
        }
        let negations = format!("{HEAD}qreg q[1];\nrx({}1) q[0];\n", "-".repeat(100_000));
        assert_eq!(err(&negations).kind, ErrorKind::TooLarge);
        let functions = format!(
            "{HEAD}qreg q[1];\nrx({}1{}) q[0];\n",
            "sin(".repeat(3_000),
            ")".repeat(3_000)
        );
        assert_eq!(err(&functions).kind, ErrorKind::TooLarge);
        // At the limit, it parses and evaluates.
        let at_limit = vec!["1"; MAX_EXPR_OPERATIONS + 1].join("+");
        let c = parse(&format!("{HEAD}qreg q[1];\nrz({at_limit}) q[0];\n")).expect("at the limit");
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn deeply_nested_gate_definitions_are_refused() {
        let mut src = format!("{HEAD}qreg q[1];\ngate g0 a {{ x a; }}\n");
        for k in 1..10_000 {
            src += &format!("gate g{k} a {{ g{} a; }}\n", k - 1);
        }
        src += "g9999 q[0];\n";
        let e = err(&src);
        assert_eq!(e.kind, ErrorKind::TooLarge, "{e}");
        let mut ok = format!("{HEAD}qreg q[1];\ngate g0 a {{ x a; }}\n");
        for k in 1..MAX_GATE_NESTING {
            ok += &format!("gate g{k} a {{ g{} a; }}\n", k - 1);
        }
        ok += &format!("g{} q[0];\n", MAX_GATE_NESTING - 1);
        assert_eq!(parse(&ok).expect("at the nesting limit").len(), 1);
    }

    #[test]
    fn comments_and_empty_programs() {
        let c =
            parse("OPENQASM 2.0; /* block */ include \"qelib1.inc\"; // line\nqreg q[3];").unwrap();
        assert_eq!(c.num_qubits(), 3);
        assert!(c.is_empty());
    }
}
