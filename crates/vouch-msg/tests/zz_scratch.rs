use vouch_msg::*;
#[test]
fn dump() {
    let input = std::fs::read("tests/vectors/rfc4475/3.1.1.8-dblreq.sip").unwrap();
    let mut d = StreamDecoder::new(Limits::DEFAULT);
    d.push(&input);
    loop {
        match d.decode() {
            Ok(Some(m)) => println!("MSG {:?} {}", m.start_line(), m.as_bytes().len()),
            Ok(None) => {
                println!("none, buffered {}", d.buffered());
                break;
            }
            Err(e) => {
                println!("ERR {e}");
                break;
            }
        }
    }
}
