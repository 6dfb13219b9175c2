//! `reason_phrase`: every status code of RFC 3261 §21 and of the extensions vouch sends or
//! relays has the phrase its RFC gives; any other code gets the title of its class in §21.

use vouch_msg::reason_phrase;

/// RFC 3261 §21.1.1–§21.6.4, as the section headings write them.
const RFC_3261: [(u16, &str); 50] = [
    (100, "Trying"),
    (180, "Ringing"),
    (181, "Call Is Being Forwarded"),
    (182, "Queued"),
    (183, "Session Progress"),
    (200, "OK"),
    (300, "Multiple Choices"),
    (301, "Moved Permanently"),
    (302, "Moved Temporarily"),
    (305, "Use Proxy"),
    (380, "Alternative Service"),
    (400, "Bad Request"),
    (401, "Unauthorized"),
    (402, "Payment Required"),
    (403, "Forbidden"),
    (404, "Not Found"),
    (405, "Method Not Allowed"),
    (406, "Not Acceptable"),
    (407, "Proxy Authentication Required"),
    (408, "Request Timeout"),
    (410, "Gone"),
    (413, "Request Entity Too Large"),
    (414, "Request-URI Too Long"),
    (415, "Unsupported Media Type"),
    (416, "Unsupported URI Scheme"),
    (420, "Bad Extension"),
    (421, "Extension Required"),
    (423, "Interval Too Brief"),
    (480, "Temporarily Unavailable"),
    (481, "Call/Transaction Does Not Exist"),
    (482, "Loop Detected"),
    (483, "Too Many Hops"),
    (484, "Address Incomplete"),
    (485, "Ambiguous"),
    (486, "Busy Here"),
    (487, "Request Terminated"),
    (488, "Not Acceptable Here"),
    (491, "Request Pending"),
    (493, "Undecipherable"),
    (500, "Server Internal Error"),
    (501, "Not Implemented"),
    (502, "Bad Gateway"),
    (503, "Service Unavailable"),
    (504, "Server Time-out"),
    (505, "Version Not Supported"),
    (513, "Message Too Large"),
    (600, "Busy Everywhere"),
    (603, "Decline"),
    (604, "Does Not Exist Anywhere"),
    (606, "Not Acceptable"),
];

/// Extension codes vouch sends or relays, with the "Default Reason Phrase" of their RFC.
const EXTENSIONS: [(u16, &str); 9] = [
    (199, "Early Dialog Terminated"),          // RFC 6228
    (428, "Use Identity Header"),              // RFC 4474 §14.2
    (430, "Flow Failed"),                      // RFC 5626 §11.5
    (436, "Bad Identity-Info"),                // RFC 4474 §14.3
    (437, "Unsupported Certificate"),          // RFC 4474 §14.4
    (438, "Invalid Identity Header"),          // RFC 4474 §14.5
    (439, "First Hop Lacks Outbound Support"), // RFC 5626 §11.6
    (489, "Bad Event"),                        // RFC 3265
    (494, "Security Agreement Required"),      // RFC 3329
];

#[test]
fn every_rfc_3261_status_code_has_its_phrase() {
    for (status, phrase) in RFC_3261 {
        assert_eq!(reason_phrase(status), phrase, "{status}");
    }
}

#[test]
fn the_extension_codes_vouch_uses_have_their_phrases() {
    for (status, phrase) in EXTENSIONS {
        assert_eq!(reason_phrase(status), phrase, "{status}");
    }
}

#[test]
fn an_unknown_code_gets_the_title_of_its_class() {
    // RFC 3261 §8.1.3.2 has an unknown code read as the x00 of its class; its phrase is the
    // class's title in §21 (as Kamailio's error_text gives it), never "Unknown".
    for (status, phrase) in [
        (189, "Provisional"),
        (299, "Successful"),
        (399, "Redirection"),
        (499, "Request Failure"),
        (599, "Server Failure"),
        (699, "Global Failure"),
    ] {
        assert_eq!(reason_phrase(status), phrase, "{status}");
    }
}

#[test]
fn a_parse_error_names_its_status_with_the_same_phrase() {
    let e =
        vouch_msg::Message::parse(&b"OPTIONS sip:a@example.com SIP/3.0\r\n\r\n"[..]).unwrap_err();
    assert_eq!(e.status(), 505);
    assert_eq!(e.reason_phrase(), reason_phrase(505));
}
