//! Counts in words: `1 file`, `2 files`, `0 probes`. Messages say
//! "1 files" no more.

/// Any count type (`usize`, `u32`, `u64`).
pub trait Number: std::fmt::Display + PartialEq + From<u8> {}
impl<T: std::fmt::Display + PartialEq + From<u8>> Number for T {}

/// `n` and the noun, in the plural unless `n` is one. The noun is the
/// singular of a regular English plural (`file`, `probe`, `check`,
/// `commit`, `line`, `approval`); an irregular one goes through
/// [`count_as`].
pub fn count<N: Number>(n: N, noun: &str) -> String {
    if n == N::from(1) {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// `n` with the singular or the plural given.
pub fn count_as<N: Number>(n: N, one: &str, many: &str) -> String {
    if n == N::from(1) {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_is_singular_and_everything_else_plural() {
        assert_eq!(count(1usize, "file"), "1 file");
        assert_eq!(count(1u32, "probe"), "1 probe");
        assert_eq!(count(0u64, "file"), "0 files");
        assert_eq!(count(2usize, "probe"), "2 probes");
        assert_eq!(count_as(1usize, "person", "people"), "1 person");
        assert_eq!(count_as(3usize, "person", "people"), "3 people");
    }
}
