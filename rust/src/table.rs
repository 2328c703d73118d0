//! The pinned uppercase table of spec/PROTOCOL.md T-4, embedded at build time from spec/uppercase.tsv.
//!
//! Format: lines starting with `#` are comments; every other line is `CODEPOINT<TAB>REPLACEMENT`, hex code
//! points, the replacement one or more of them separated by single spaces. Code points not listed map to
//! themselves. Nothing here asks Rust's own case functions (T-5): the table is the only source.
//!
//! Lookup: a two-level index over code points (blocks of 128). Each entry is the replacement already
//! encoded as UTF-8, packed into one u64 (the bytes little-endian in the low 7 bytes, the length in the top
//! byte; the longest replacement is 6 bytes, ΐ), so the transducer stores it with one 8-byte write and
//! never encodes. 0 means "maps to itself".

const TSV: &str = include_str!("../../spec/uppercase.tsv");
const BLOCK_BITS: u32 = 7;
const BLOCK: usize = 1 << BLOCK_BITS;
const CODE_POINTS: usize = 0x11_0000;

pub struct Table {
    /// code point >> BLOCK_BITS -> block number; block 0 is all "maps to itself".
    index: Vec<u16>,
    /// block * BLOCK + (code point & (BLOCK - 1)) -> packed replacement; 0 = maps to itself.
    blocks: Vec<u64>,
    /// U on every code point below 0x800 (ASCII and the two-byte sequences), packed; never 0 (an unmapped
    /// character holds its own bytes), so the transducer stores without a branch.
    small: Vec<u64>,
    /// U on one ASCII byte.
    pub ascii: [u8; 128],
    /// Whether `ascii` is exactly a-z -> A-Z (the arithmetic fast path of the transducer is then exact).
    pub ascii_is_a_to_z: bool,
    pub entries: usize,
}

impl Table {
    /// The table embedded in the binary (spec/uppercase.tsv at build time).
    pub fn embedded() -> Table {
        Table::parse(TSV).expect("spec/uppercase.tsv, embedded at build time, is well-formed")
    }

    /// Parse the TSV; an error names the line.
    pub fn parse(text: &str) -> Result<Table, String> {
        let mut table = Table {
            index: vec![0; CODE_POINTS / BLOCK],
            blocks: vec![0; BLOCK],
            small: Vec::new(),
            ascii: [0; 128],
            ascii_is_a_to_z: false,
            entries: 0,
        };
        for (n, line) in text.lines().enumerate() {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |what: &str| format!("uppercase table line {}: {}: {:?}", n + 1, what, line);
            let mut fields = line.split('\t');
            let (key, value) = match (fields.next(), fields.next(), fields.next()) {
                (Some(key), Some(value), None) => (key, value),
                _ => return Err(bad("not CODEPOINT<TAB>REPLACEMENT")),
            };
            let key = scalar(key).ok_or_else(|| bad("not a hex scalar value"))?;
            let mut utf8 = Vec::new();
            for part in value.split(' ') {
                let c = scalar(part).ok_or_else(|| bad("replacement not hex scalar values"))?;
                let mut buffer = [0u8; 4];
                utf8.extend_from_slice(c.encode_utf8(&mut buffer).as_bytes());
            }
            if utf8.len() > MAX_REPLACEMENT {
                return Err(bad("replacement longer than 7 bytes"));
            }
            let mut packed = [0u8; 8];
            packed[..utf8.len()].copy_from_slice(&utf8);
            packed[7] = utf8.len() as u8;
            table.insert(key as usize, u64::from_le_bytes(packed)).map_err(bad)?;
        }
        for b in 0..128u8 {
            table.ascii[b as usize] = match table.get(b as u32).as_deref() {
                Some(&[mapped]) if mapped < 0x80 => mapped,
                Some(_) => return Err(format!("ASCII {:#04x} maps to other than one ASCII byte", b)),
                None => b,
            };
        }
        table.small = (0..0x800u32)
            .map(|code_point| match table.packed(code_point) {
                0 if code_point < 0x80 => u64::from(code_point) | 1 << 56,
                0 => {
                    let [b0, b1] = [0xC0 | (code_point >> 6) as u8, 0x80 | (code_point & 0x3F) as u8];
                    u64::from_le_bytes([b0, b1, 0, 0, 0, 0, 0, 2])
                }
                packed => packed,
            })
            .collect();
        table.ascii_is_a_to_z =
            (0..128u8).all(|b| table.ascii[b as usize] == if b.is_ascii_lowercase() { b - 32 } else { b });
        Ok(table)
    }

    fn insert(&mut self, code_point: usize, packed: u64) -> Result<(), &'static str> {
        let page = code_point >> BLOCK_BITS;
        if self.index[page] == 0 {
            let number = self.blocks.len() / BLOCK;
            self.index[page] = u16::try_from(number).map_err(|_| "too many blocks")?;
            self.blocks.resize(self.blocks.len() + BLOCK, 0);
        }
        let slot = self.index[page] as usize * BLOCK + (code_point & (BLOCK - 1));
        if self.blocks[slot] != 0 {
            return Err("code point listed twice");
        }
        self.blocks[slot] = packed;
        self.entries += 1;
        Ok(())
    }

    /// The packed replacement of `code_point` (a scalar value): 0 when it maps to itself, else its UTF-8
    /// bytes little-endian with the length in the top byte (`unpack`).
    #[inline]
    pub fn packed(&self, code_point: u32) -> u64 {
        let block = self.index[(code_point >> BLOCK_BITS) as usize] as usize;
        self.blocks[block * BLOCK + (code_point as usize & (BLOCK - 1))]
    }

    /// U on `code_point` below 0x800, packed: its replacement, or its own bytes.
    #[inline]
    pub fn small(&self, code_point: u32) -> u64 {
        self.small[code_point as usize & 0x7FF]
    }

    /// The UTF-8 of the replacement of `code_point`, or None when it maps to itself.
    pub fn get(&self, code_point: u32) -> Option<Vec<u8>> {
        match self.packed(code_point) {
            0 => None,
            packed => Some(unpack(packed).to_vec()),
        }
    }
}

/// The longest replacement a packed entry holds.
pub const MAX_REPLACEMENT: usize = 7;

/// The length of a packed replacement.
#[inline]
pub fn packed_len(packed: u64) -> usize {
    (packed >> 56) as usize
}

/// The bytes of a packed replacement (a view of a copy, for the slow paths and tests).
pub fn unpack(packed: u64) -> PackedBytes {
    PackedBytes(packed.to_le_bytes(), packed_len(packed))
}

pub struct PackedBytes([u8; 8], usize);

impl std::ops::Deref for PackedBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0[..self.1]
    }
}

fn scalar(hex: &str) -> Option<char> {
    if hex.is_empty() || hex.len() > 6 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    char::from_u32(u32::from_str_radix(hex, 16).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_table_has_every_entry() {
        let table = Table::embedded();
        let header = TSV.lines().find_map(|line| line.strip_prefix("# Entries: ")).unwrap();
        let count: usize = header.split('.').next().unwrap().parse().unwrap();
        assert_eq!(table.entries, count);
        assert_eq!(table.entries, 1525);
        assert!(table.ascii_is_a_to_z);
    }

    #[test]
    fn lookups() {
        let table = Table::embedded();
        let utf8 = |s: &str| Some(s.as_bytes().to_vec());
        assert_eq!(table.get('ß' as u32), utf8("SS"));
        assert_eq!(table.get('ΐ' as u32), utf8("\u{0399}\u{0308}\u{0301}"));
        assert_eq!(table.get('𐐨' as u32), utf8("𐐀"));
        assert_eq!(table.get('ı' as u32), utf8("I"));
        assert_eq!(table.get('İ' as u32), None);
        assert_eq!(table.get('ẞ' as u32), None);
        assert_eq!(table.get(0x10FFFF), None);
        assert_eq!(&*unpack(table.small('é' as u32)), "É".as_bytes());
        assert_eq!(&*unpack(table.small('a' as u32)), b"A");
        assert_eq!(&*unpack(table.small('!' as u32)), b"!");
        assert_eq!(&*unpack(table.small('É' as u32)), "É".as_bytes());
        assert_eq!(&*unpack(table.small('ΐ' as u32)), "\u{0399}\u{0308}\u{0301}".as_bytes());
    }

    #[test]
    fn rejects_malformed_lines() {
        assert!(Table::parse("0061\t0041\n0061\t0041\n").is_err());
        assert!(Table::parse("0061 0041\n").is_err());
        assert!(Table::parse("D800\t0041\n").is_err());
        assert!(Table::parse("0061\t0041 zz\n").is_err());
    }
}
