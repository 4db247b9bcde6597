//! Turns fuzz bytes into a header list: each header is one byte picking a
//! name from `names`, one byte giving the value length, then the value.

pub fn header_list<'a>(names: &[&'static str], data: &'a [u8]) -> Vec<(&'static str, &'a [u8])> {
    let mut headers = Vec::new();
    let mut rest = data;
    while rest.len() >= 2 {
        let name = names[rest[0] as usize % names.len()];
        let len = (rest[1] as usize).min(rest.len() - 2);
        headers.push((name, &rest[2..2 + len]));
        rest = &rest[2 + len..];
    }
    headers
}
