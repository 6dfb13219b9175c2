use vouch_msg::*;
#[test]
fn dump() {
    for s in [
        "sip:a@b;x=1",
        "sip:a@b;%41",
        "sip:h;a;b=c",
        "sip:h;[;]",
        "sip:h;a=%22",
        "sip:u@h;x=\"",
        "sip:u@h;x;y",
    ] {
        let u = Uri::parse(s);
        match u {
            Ok(Uri::Sip(s2)) => {
                let v: Vec<_> = s2.params().iter().take(10).collect();
                println!("{s} -> {:?} raw={:?}", v, s2.params().as_str());
            }
            other => println!("{s} -> {:?}", other),
        }
    }
}
