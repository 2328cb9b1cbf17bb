//! Why a connection was closed: the QUIC application close codes, the same
//! for the hub that closes and the SDK that is closed.

/// A connection's application close code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CloseCode {
    /// The client said goodbye, or the hub answered its goodbye.
    Normal,
    /// The client broke the protocol (a bad frame, a second hello, ...);
    /// a `Closing` frame said which way.
    Protocol,
    /// The hello was refused (version, credentials, limits); a `Closing`
    /// frame said why. Connecting again the same way is refused again.
    Refused,
    /// The client fell too far behind on its events or its answers; it
    /// may connect again and resume.
    TooSlow,
    /// The hub is shutting down; connect again later.
    Shutdown,
}

impl CloseCode {
    /// Every code, in wire order.
    pub const ALL: [Self; 5] = [
        Self::Normal,
        Self::Protocol,
        Self::Refused,
        Self::TooSlow,
        Self::Shutdown,
    ];

    /// The number on the wire.
    pub const fn code(self) -> u32 {
        match self {
            Self::Normal => 0,
            Self::Protocol => 1,
            Self::Refused => 2,
            Self::TooSlow => 3,
            Self::Shutdown => 4,
        }
    }

    /// The code a number on the wire stands for, if any.
    pub fn from_code(code: u64) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|close| u64::from(close.code()) == code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wire_numbers_are_pinned() {
        let numbers: Vec<u32> = CloseCode::ALL.iter().map(|close| close.code()).collect();
        assert_eq!(numbers, [0, 1, 2, 3, 4]);
        for close in CloseCode::ALL {
            assert_eq!(CloseCode::from_code(u64::from(close.code())), Some(close));
        }
        assert_eq!(CloseCode::from_code(5), None);
    }
}
