//! The pinned uppercase table of spec/PROTOCOL.md T-4, embedded at build time from spec/uppercase.tsv.
//!
//! Format: lines starting with `#` are comments; every other line is `CODEPOINT<TAB>REPLACEMENT`, hex code
//! points, the replacement one or more of them separated by single spaces. Code points not listed map to
//! themselves. Nothing here asks Rust's own case functions (T-5): the table is the only source.
//!
//! Lookup: a two-level index over code points (blocks of 128), each entry naming a replacement that is
//! stored already encoded as UTF-8, so the transducer copies bytes and never encodes.

const TSV: &str = include_str!("../../spec/uppercase.tsv");
const BLOCK_BITS: u32 = 7;
const BLOCK: usize = 1 << BLOCK_BITS;
const CODE_POINTS: usize = 0x11_0000;

pub struct Table {
    /// code point >> BLOCK_BITS -> block number; block 0 is all "maps to itself".
    index: Vec<u16>,
    /// block * BLOCK + (code point & (BLOCK - 1)) -> replacement number; 0 = maps to itself.
    blocks: Vec<u16>,
    /// replacement number -> (start, end) in `utf8`.
    spans: Vec<(u32, u32)>,
    utf8: Vec<u8>,
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
            spans: vec![(0, 0)],
            utf8: Vec::new(),
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
            let start = table.utf8.len() as u32;
            for part in value.split(' ') {
                let c = scalar(part).ok_or_else(|| bad("replacement not hex scalar values"))?;
                let mut buffer = [0u8; 4];
                table.utf8.extend_from_slice(c.encode_utf8(&mut buffer).as_bytes());
            }
            table.insert(key as usize, start, table.utf8.len() as u32).map_err(bad)?;
        }
        for b in 0..128u8 {
            table.ascii[b as usize] = match table.get(b as u32) {
                Some(&[mapped]) => mapped,
                Some(_) => return Err(format!("ASCII {:#04x} maps to more than one byte", b)),
                None => b,
            };
        }
        table.ascii_is_a_to_z =
            (0..128u8).all(|b| table.ascii[b as usize] == if b.is_ascii_lowercase() { b - 32 } else { b });
        Ok(table)
    }

    fn insert(&mut self, code_point: usize, start: u32, end: u32) -> Result<(), &'static str> {
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
        self.blocks[slot] = u16::try_from(self.spans.len()).map_err(|_| "too many entries")?;
        self.spans.push((start, end));
        self.entries += 1;
        Ok(())
    }

    /// The UTF-8 of the replacement of `code_point`, or None when it maps to itself.
    #[inline]
    pub fn get(&self, code_point: u32) -> Option<&[u8]> {
        let block = self.index[(code_point >> BLOCK_BITS) as usize] as usize;
        let number = self.blocks[block * BLOCK + (code_point as usize & (BLOCK - 1))];
        if number == 0 {
            return None;
        }
        let (start, end) = self.spans[number as usize];
        Some(&self.utf8[start as usize..end as usize])
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
        assert_eq!(table.get('ß' as u32), Some("SS".as_bytes()));
        assert_eq!(table.get('ΐ' as u32), Some("\u{0399}\u{0308}\u{0301}".as_bytes()));
        assert_eq!(table.get('𐐨' as u32), Some("𐐀".as_bytes()));
        assert_eq!(table.get('ı' as u32), Some("I".as_bytes()));
        assert_eq!(table.get('İ' as u32), None);
        assert_eq!(table.get('ẞ' as u32), None);
        assert_eq!(table.get(0x10FFFF), None);
    }

    #[test]
    fn rejects_malformed_lines() {
        assert!(Table::parse("0061\t0041\n0061\t0041\n").is_err());
        assert!(Table::parse("0061 0041\n").is_err());
        assert!(Table::parse("D800\t0041\n").is_err());
        assert!(Table::parse("0061\t0041 zz\n").is_err());
    }
}
