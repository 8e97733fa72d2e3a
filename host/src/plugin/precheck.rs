//! Checks that bound what compiling a component can cost, made on its bytes before any
//! compilation: the number of locals each function declares (Cranelift's register
//! allocation grows faster than linearly with them: ten functions of 40 000 locals take
//! minutes and half a gigabyte to compile).
//!
//! The scan walks the component's sections, descends into nested components and core
//! modules, and reads only the local declarations at the start of each function body. It
//! validates nothing else; wasmtime validates the whole component when compiling it.

/// Most locals one function may declare. The guests we build stay far below it (the most
/// in one function: 271 in the CPython component, 118 in the SpiderMonkey one).
pub const MAX_FUNCTION_LOCALS: u64 = 10_000;

/// Why a component is refused before compiling.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// A function declares more than [`MAX_FUNCTION_LOCALS`] locals.
    TooManyLocals {
        /// Index of the function within the code section of its module.
        function: u32,
        /// How many locals it declares.
        locals: u64,
    },
    /// The bytes end or are malformed where the scan reads them.
    Malformed(&'static str),
}

/// Scans a component (or core module) binary for functions beyond the limits.
pub(crate) fn check(bytes: &[u8]) -> Result<(), Refusal> {
    let body = bytes
        .get(8..)
        .ok_or(Refusal::Malformed("the preamble is cut short"))?;
    let is_component = bytes.get(4..8) != Some(&[1, 0, 0, 0][..]);
    let mut reader = Reader(body);
    while !reader.is_empty() {
        let id = reader.byte()?;
        let size = reader.u32()? as usize;
        let contents = reader.take(size)?;
        match (is_component, id) {
            // A nested core module (1) or component (4).
            (true, 1) | (true, 4) => check(contents)?,
            (false, 10) => check_code(contents)?,
            _ => {}
        }
    }
    Ok(())
}

/// Reads the local declarations of every function body of a code section.
fn check_code(section: &[u8]) -> Result<(), Refusal> {
    let mut reader = Reader(section);
    let functions = reader.u32()?;
    for function in 0..functions {
        let size = reader.u32()? as usize;
        let mut body = Reader(reader.take(size)?);
        let groups = body.u32()?;
        let mut locals = 0u64;
        for _ in 0..groups {
            locals += u64::from(body.u32()?);
            if locals > MAX_FUNCTION_LOCALS {
                return Err(Refusal::TooManyLocals { function, locals });
            }
            body.value_type()?;
        }
    }
    Ok(())
}

/// A cursor over WebAssembly binary data.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn byte(&mut self) -> Result<u8, Refusal> {
        let (&b, rest) = self
            .0
            .split_first()
            .ok_or(Refusal::Malformed("a section ends early"))?;
        self.0 = rest;
        Ok(b)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Refusal> {
        if n > self.0.len() {
            return Err(Refusal::Malformed("a section is longer than the file"));
        }
        let (taken, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(taken)
    }

    /// An unsigned LEB128 number of at most 32 bits.
    fn u32(&mut self) -> Result<u32, Refusal> {
        let mut value = 0u64;
        for shift in (0..35).step_by(7) {
            let b = self.byte()?;
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return u32::try_from(value).map_err(|_| Refusal::Malformed("a number is too big"));
            }
        }
        Err(Refusal::Malformed("a number is too long"))
    }

    /// Skips one value type: a single byte, or a reference type with its heap type.
    fn value_type(&mut self) -> Result<(), Refusal> {
        if matches!(self.byte()?, 0x63 | 0x64) {
            // A signed LEB128 heap type.
            for _ in 0..5 {
                if self.byte()? & 0x80 == 0 {
                    return Ok(());
                }
            }
            return Err(Refusal::Malformed("a heap type is too long"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A core module with one function per entry of `locals`, each declaring that many
    /// `i64` locals in groups of at most 1000.
    fn module(locals: &[u32]) -> Vec<u8> {
        let mut code = leb(locals.len() as u32);
        for &n in locals {
            let groups: Vec<u32> = (0..n.div_ceil(1000))
                .map(|g| (n - g * 1000).min(1000))
                .collect();
            let mut body = leb(groups.len() as u32);
            for g in groups {
                body.extend(leb(g));
                body.push(0x7e);
            }
            body.push(0x0b);
            code.extend(leb(body.len() as u32));
            code.extend(body);
        }
        let mut bytes = b"\0asm\x01\0\0\0".to_vec();
        bytes.push(10);
        bytes.extend(leb(code.len() as u32));
        bytes.extend(code);
        bytes
    }

    fn component(module: Vec<u8>) -> Vec<u8> {
        let mut bytes = b"\0asm\x0d\0\x01\0".to_vec();
        bytes.push(1);
        bytes.extend(leb(module.len() as u32));
        bytes.extend(module);
        bytes
    }

    fn leb(mut n: u32) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let b = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(b);
                return out;
            }
            out.push(b | 0x80);
        }
    }

    #[test]
    fn functions_with_too_many_locals_are_found_in_nested_modules() {
        assert_eq!(check(&component(module(&[3, 10_000]))), Ok(()));
        assert_eq!(
            check(&component(module(&[3, 40_000]))),
            Err(Refusal::TooManyLocals {
                function: 1,
                locals: 10_000 + 1000
            })
        );
        assert!(matches!(
            check(&component(module(&[3])[..12].to_vec())),
            Err(Refusal::Malformed(_))
        ));
    }
}
