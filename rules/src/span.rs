//! Bounds checks for spans and runs that cross the component boundary.

/// `start..start + len` where it lies within `0..limit`: the one bounds check for every span,
/// header run and child range, which come from the other side of the boundary and may not.
#[inline]
pub fn within(start: u32, len: u32, limit: usize) -> Option<std::ops::Range<usize>> {
    let start = start as usize;
    let end = start.checked_add(len as usize)?;
    (end <= limit).then_some(start..end)
}

#[cfg(test)]
mod tests {
    use super::within;

    #[test]
    fn spans_inside_and_outside() {
        assert_eq!(within(0, 0, 0), Some(0..0));
        assert_eq!(within(2, 3, 5), Some(2..5));
        assert_eq!(within(2, 4, 5), None);
        assert_eq!(within(u32::MAX, 1, 10), None);
    }
}
