//! The pinned uppercase table of spec/PROTOCOL.md T-4, embedded at build time from spec/uppercase.tsv.
//!
//! Format: lines starting with `#` are comments; every other line is `CODEPOINT<TAB>REPLACEMENT`, hex code
//! points, the replacement one or more of them separated by single spaces. Code points not listed map to
//! themselves. Nothing here asks Rust's own case functions (T-5): the table is the only source.
//!
//! Lookup: a two-level index over code points (blocks of 128). Each entry is the replacement already
//! encoded as UTF-8, packed into one u64 (the bytes little-endian in the low 7 bytes, the length in the top
//! byte; the longest replacement is 6 bytes, ΐ), so the transducer stores it with one 8-byte write and
//! never encodes. 0 means "maps to itself". For the transducer's hot loop, the code points below 0x10000
//! (one to three bytes) also have a flat table (512 KiB) with their own bytes where they map to themselves,
//! indexed by `key`, which reads the UTF-8 bytes without decoding them.

const TSV: &str = include_str!("../../spec/uppercase.tsv");
const BLOCK_BITS: u32 = 7;
const BLOCK: usize = 1 << BLOCK_BITS;
const CODE_POINTS: usize = 0x11_0000;

pub struct Table {
    /// code point >> BLOCK_BITS -> block number; block 0 is all "maps to itself".
    index: Vec<u16>,
    /// block * BLOCK + (code point & (BLOCK - 1)) -> packed replacement; 0 = maps to itself.
    blocks: Vec<u64>,
    /// U on every code point below 0x10000, packed, at the `key` of its UTF-8; never 0 (an unmapped
    /// character holds its own bytes), so the transducer stores without a branch.
    bmp: Box<[u64; 0x10000]>,
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
            bmp: vec![0; 0x10000].into_boxed_slice().try_into().unwrap(),
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
        for code_point in 0..0x10000u32 {
            table.bmp[key(three_byte_form(code_point), THREE_BYTE_KEY) as usize] = match table.packed(code_point) {
                0 => own_packed(code_point),
                packed => packed,
            };
        }
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

    /// U on the code point below 0x10000 whose `key` this is, packed: its replacement, or its own bytes.
    #[inline]
    pub fn bmp(&self, key: u16) -> u64 {
        self.bmp[key as usize]
    }

    /// The UTF-8 of the replacement of `code_point`, or None when it maps to itself.
    pub fn get(&self, code_point: u32) -> Option<Vec<u8>> {
        match self.packed(code_point) {
            0 => None,
            packed => Some(unpack(packed).to_vec()),
        }
    }
}

/// Where a code point below 0x10000 is in `Table::bmp`: from its UTF-8, the first byte lowest in a u32 (a
/// byte after the sequence is ignored), and the multiplier for its length. The multiply packs the 16 bits
/// that carry the code point (4 + 6 + 6 of three bytes) into 16, cheaper than assembling the code point; no
/// two code points share a key (a test checks). Two bytes (5 + 6) multiplied a byte further up land where
/// the same code point's overlong three-byte form would, and the byte after them lands above the key.
#[inline(always)]
pub fn key(sequence: u32, multiplier: u32) -> u16 {
    ((sequence & 0x3F_3F1F).wrapping_mul(multiplier) >> 6) as u16
}

/// `key`'s multipliers for a three- and a two-byte sequence.
pub const THREE_BYTE_KEY: u32 = 0x4011;
pub const TWO_BYTE_KEY: u32 = THREE_BYTE_KEY << 8;

/// `code_point` below 0x10000 as three UTF-8 bytes (overlong below 0x800), first byte lowest.
fn three_byte_form(code_point: u32) -> u32 {
    0x80_80E0 | code_point >> 12 | (code_point >> 6 & 0x3F) << 8 | (code_point & 0x3F) << 16
}

/// `code_point` below 0x800 as two UTF-8 bytes (overlong below 0x80), first byte lowest.
fn two_byte_form(code_point: u32) -> u32 {
    0x80C0 | code_point >> 6 | (code_point & 0x3F) << 8
}

/// The UTF-8 of `code_point` below 0x10000, packed (surrogates, which are never looked up, as if they were
/// scalar values).
fn own_packed(code_point: u32) -> u64 {
    match code_point {
        0..=0x7F => u64::from(code_point) | 1 << 56,
        0x80..=0x7FF => u64::from(two_byte_form(code_point)) | 2 << 56,
        _ => u64::from(three_byte_form(code_point)) | 3 << 56,
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
        let bmp = |c: char| unpack(table.bmp(key(three_byte_form(c as u32), THREE_BYTE_KEY))).to_vec();
        assert_eq!(bmp('é'), "É".as_bytes());
        assert_eq!(bmp('a'), b"A");
        assert_eq!(bmp('!'), b"!");
        assert_eq!(bmp('É'), "É".as_bytes());
        assert_eq!(bmp('ΐ'), "\u{0399}\u{0308}\u{0301}".as_bytes());
        assert_eq!(bmp('ა'), "Ა".as_bytes());
        assert_eq!(bmp('ẞ'), "ẞ".as_bytes());
    }

    #[test]
    fn no_two_code_points_share_a_key() {
        let mut seen = vec![false; 0x10000];
        for code_point in 0..0x10000 {
            let key = key(three_byte_form(code_point), THREE_BYTE_KEY) as usize;
            assert!(!seen[key], "{:#x}", code_point);
            seen[key] = true;
        }
        for code_point in 0x80..0x800 {
            let then_a_byte = two_byte_form(code_point) | 0xFF << 16;
            assert_eq!(key(then_a_byte, TWO_BYTE_KEY), key(three_byte_form(code_point), THREE_BYTE_KEY));
        }
    }

    #[test]
    fn rejects_malformed_lines() {
        assert!(Table::parse("0061\t0041\n0061\t0041\n").is_err());
        assert!(Table::parse("0061 0041\n").is_err());
        assert!(Table::parse("D800\t0041\n").is_err());
        assert!(Table::parse("0061\t0041 zz\n").is_err());
    }
}
