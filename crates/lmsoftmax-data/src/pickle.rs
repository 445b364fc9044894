//! A small Python pickle reader (protocols 0-2 opcodes used by the CIFAR files and their meta
//! files), including numpy arrays pickled through `numpy.core.multiarray._reconstruct`. It only
//! builds values: no code is ever run, unknown globals are kept as names.

use std::collections::HashMap;

/// A decoded pickle value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `None`.
    None,
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A Python 2 `str` / Python 3 `bytes` (CIFAR's strings are these).
    Bytes(Vec<u8>),
    /// A unicode string.
    Str(String),
    /// A list.
    List(Vec<Value>),
    /// A tuple.
    Tuple(Vec<Value>),
    /// A dict, in insertion order.
    Dict(Vec<(Value, Value)>),
    /// A global reference `module name`.
    Global(String, String),
    /// A numpy array: shape, dtype descriptor (e.g. `u1`) and raw little-endian bytes.
    Array {
        /// Shape.
        shape: Vec<usize>,
        /// numpy dtype string, e.g. `u1`, `i8`.
        dtype: String,
        /// The raw data.
        data: Vec<u8>,
    },
    /// `callable(*args)` for a callable this reader does not model.
    Call(Box<Value>, Box<Value>),
}

impl Value {
    /// The text of a `Bytes` or `Str` value.
    pub fn as_text(&self) -> Option<String> {
        match self {
            Value::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
            Value::Str(s) => Some(s.clone()),
            _ => None,
        }
    }

    /// Looks a key up in a dict whose keys are text.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Dict(items) => items
                .iter()
                .find(|(k, _)| k.as_text().as_deref() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }
}

/// Parses a pickle; the error says which opcode at which offset was wrong.
pub fn parse(bytes: &[u8]) -> Result<Value, String> {
    Machine::default().run(bytes)
}

#[derive(Default)]
struct Machine {
    stack: Vec<Value>,
    marks: Vec<usize>,
    memo: HashMap<u32, Value>,
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| {
                format!(
                    "truncated: needs {n} more bytes at offset {} of {}",
                    self.pos,
                    self.bytes.len()
                )
            })?;
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, String> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().unwrap()))
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }
    fn line(&mut self) -> Result<&'a [u8], String> {
        let rest = &self.bytes[self.pos..];
        let n = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| format!("truncated: no end of line after offset {}", self.pos))?;
        let out = &rest[..n];
        self.pos += n + 1;
        Ok(out)
    }
}

/// Upper bound on one length field, so that a corrupt header cannot ask for huge allocations.
const MAX_LEN: usize = 1 << 31;

impl Machine {
    fn pop(&mut self, op: &str) -> Result<Value, String> {
        self.stack
            .pop()
            .ok_or_else(|| format!("{op}: the stack is empty"))
    }

    fn pop_mark(&mut self, op: &str) -> Result<Vec<Value>, String> {
        let mark = self
            .marks
            .pop()
            .ok_or_else(|| format!("{op}: no MARK before it"))?;
        if mark > self.stack.len() {
            return Err(format!("{op}: MARK above the stack"));
        }
        Ok(self.stack.split_off(mark))
    }

    fn top_mut(&mut self, op: &str) -> Result<&mut Value, String> {
        self.stack
            .last_mut()
            .ok_or_else(|| format!("{op}: the stack is empty"))
    }

    fn run(mut self, bytes: &[u8]) -> Result<Value, String> {
        let mut r = Reader { bytes, pos: 0 };
        loop {
            let at = r.pos;
            let op = r
                .u8()
                .map_err(|_| "truncated: no STOP opcode".to_string())?;
            let result: Result<(), String> = (|| {
                match op {
                    0x80 => {
                        let proto = r.u8()?;
                        if proto > 5 {
                            return Err(format!("unsupported pickle protocol {proto}"));
                        }
                    }
                    b'.' => return Err(String::new()), // STOP, handled below
                    b'}' => self.stack.push(Value::Dict(Vec::new())),
                    b']' => self.stack.push(Value::List(Vec::new())),
                    b')' => self.stack.push(Value::Tuple(Vec::new())),
                    b'(' => self.marks.push(self.stack.len()),
                    b'N' => self.stack.push(Value::None),
                    0x88 => self.stack.push(Value::Bool(true)),
                    0x89 => self.stack.push(Value::Bool(false)),
                    b'K' => self.stack.push(Value::Int(r.u8()? as i64)),
                    b'M' => self.stack.push(Value::Int(r.u16()? as i64)),
                    b'J' => self.stack.push(Value::Int(r.u32()? as i32 as i64)),
                    b'G' => {
                        let b: [u8; 8] = r.take(8)?.try_into().unwrap();
                        self.stack.push(Value::Float(f64::from_be_bytes(b)));
                    }
                    b'U' => {
                        let n = r.u8()? as usize;
                        self.stack.push(Value::Bytes(r.take(n)?.to_vec()));
                    }
                    b'T' => {
                        let n = r.u32()? as usize;
                        if n > MAX_LEN {
                            return Err(format!("BINSTRING of {n} bytes"));
                        }
                        self.stack.push(Value::Bytes(r.take(n)?.to_vec()));
                    }
                    b'C' => {
                        let n = r.u8()? as usize;
                        self.stack.push(Value::Bytes(r.take(n)?.to_vec()));
                    }
                    b'B' => {
                        let n = r.u32()? as usize;
                        self.stack.push(Value::Bytes(r.take(n)?.to_vec()));
                    }
                    b'X' => {
                        let n = r.u32()? as usize;
                        let s = std::str::from_utf8(r.take(n)?)
                            .map_err(|_| "BINUNICODE that is not UTF-8".to_string())?;
                        self.stack.push(Value::Str(s.to_string()));
                    }
                    0x8c => {
                        let n = r.u8()? as usize;
                        let s = std::str::from_utf8(r.take(n)?)
                            .map_err(|_| "SHORT_BINUNICODE that is not UTF-8".to_string())?;
                        self.stack.push(Value::Str(s.to_string()));
                    }
                    b'q' => {
                        let k = r.u8()? as u32;
                        let v = self.top_mut("BINPUT")?.clone();
                        self.memo.insert(k, v);
                    }
                    b'r' => {
                        let k = r.u32()?;
                        let v = self.top_mut("LONG_BINPUT")?.clone();
                        self.memo.insert(k, v);
                    }
                    0x94 => {
                        let k = self.memo.len() as u32;
                        let v = self.top_mut("MEMOIZE")?.clone();
                        self.memo.insert(k, v);
                    }
                    b'h' | b'j' => {
                        let k = if op == b'h' { r.u8()? as u32 } else { r.u32()? };
                        let v = self
                            .memo
                            .get(&k)
                            .cloned()
                            .ok_or_else(|| format!("memo key {k} was never stored"))?;
                        self.stack.push(v);
                    }
                    b'a' => {
                        let v = self.pop("APPEND")?;
                        match self.top_mut("APPEND")? {
                            Value::List(l) => l.push(v),
                            _ => return Err("APPEND to a non-list".into()),
                        }
                    }
                    b'e' => {
                        let items = self.pop_mark("APPENDS")?;
                        match self.top_mut("APPENDS")? {
                            Value::List(l) => l.extend(items),
                            _ => return Err("APPENDS to a non-list".into()),
                        }
                    }
                    b's' => {
                        let v = self.pop("SETITEM")?;
                        let k = self.pop("SETITEM")?;
                        match self.top_mut("SETITEM")? {
                            Value::Dict(d) => d.push((k, v)),
                            _ => return Err("SETITEM on a non-dict".into()),
                        }
                    }
                    b'u' => {
                        let items = self.pop_mark("SETITEMS")?;
                        if items.len() % 2 != 0 {
                            return Err("SETITEMS with an odd number of items".into());
                        }
                        let mut it = items.into_iter();
                        let d = match self.top_mut("SETITEMS")? {
                            Value::Dict(d) => d,
                            _ => return Err("SETITEMS on a non-dict".into()),
                        };
                        while let (Some(k), Some(v)) = (it.next(), it.next()) {
                            d.push((k, v));
                        }
                    }
                    b't' => {
                        let items = self.pop_mark("TUPLE")?;
                        self.stack.push(Value::Tuple(items));
                    }
                    0x85..=0x87 => {
                        let n = (op - 0x84) as usize;
                        if self.stack.len() < n {
                            return Err(format!("TUPLE{n} on a stack of {}", self.stack.len()));
                        }
                        let items = self.stack.split_off(self.stack.len() - n);
                        self.stack.push(Value::Tuple(items));
                    }
                    b'c' => {
                        let module = String::from_utf8_lossy(r.line()?).into_owned();
                        let name = String::from_utf8_lossy(r.line()?).into_owned();
                        self.stack.push(Value::Global(module, name));
                    }
                    b'R' => {
                        let args = self.pop("REDUCE")?;
                        let callable = self.pop("REDUCE")?;
                        self.stack.push(reduce(callable, args)?);
                    }
                    b'b' => {
                        let state = self.pop("BUILD")?;
                        let obj = self.pop("BUILD")?;
                        self.stack.push(build(obj, state)?);
                    }
                    other => return Err(format!("unsupported opcode 0x{other:02x}")),
                }
                Ok(())
            })();
            match result {
                Ok(()) => {}
                Err(e) if e.is_empty() => {
                    return self
                        .stack
                        .pop()
                        .ok_or_else(|| "STOP on an empty stack".to_string());
                }
                Err(e) => return Err(format!("at offset {at}: {e}")),
            }
        }
    }
}

/// `callable(*args)`: numpy's array and dtype constructors become placeholders that BUILD fills.
fn reduce(callable: Value, args: Value) -> Result<Value, String> {
    match (&callable, &args) {
        (Value::Global(m, n), Value::Tuple(a))
            if n == "_reconstruct" && m.starts_with("numpy") && !a.is_empty() =>
        {
            Ok(Value::Array {
                shape: Vec::new(),
                dtype: String::new(),
                data: Vec::new(),
            })
        }
        (Value::Global(m, n), Value::Tuple(a)) if m == "numpy" && n == "dtype" && !a.is_empty() => {
            let descr = a[0].as_text().ok_or("numpy dtype without a type string")?;
            Ok(Value::Call(
                Box::new(callable.clone()),
                Box::new(Value::Str(descr)),
            ))
        }
        _ => Ok(Value::Call(Box::new(callable), Box::new(args))),
    }
}

/// `obj.__setstate__(state)` for numpy arrays: `(version, shape, dtype, is_fortran, data)`.
fn build(obj: Value, state: Value) -> Result<Value, String> {
    match obj {
        Value::Array { .. } => {
            let Value::Tuple(items) = state else {
                return Err("numpy array state is not a tuple".into());
            };
            if items.len() != 5 {
                return Err(format!(
                    "numpy array state has {} items, expected 5",
                    items.len()
                ));
            }
            let shape = match &items[1] {
                Value::Tuple(dims) => dims
                    .iter()
                    .map(|d| match d {
                        Value::Int(v) if *v >= 0 => Ok(*v as usize),
                        _ => Err("numpy shape entry that is not a non-negative int".to_string()),
                    })
                    .collect::<Result<Vec<_>, _>>()?,
                _ => return Err("numpy shape is not a tuple".into()),
            };
            let dtype = match &items[2] {
                Value::Call(_, d) => d.as_text().unwrap_or_default(),
                _ => return Err("numpy dtype is missing".into()),
            };
            if matches!(items[3], Value::Bool(true)) {
                return Err("Fortran-ordered numpy arrays are not supported".into());
            }
            let data = match &items[4] {
                Value::Bytes(b) => b.clone(),
                Value::Str(s) => s.chars().map(|c| c as u32 as u8).collect(),
                _ => return Err("numpy data is not a byte string".into()),
            };
            Ok(Value::Array { shape, dtype, data })
        }
        // A dtype's state (endianness, ...) does not matter for the byte-sized types used here.
        call @ Value::Call(..) => Ok(call),
        other => Err(format!("BUILD on an unsupported object {other:?}")),
    }
}
