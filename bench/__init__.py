"""`make bench`: measures the converter and gateway against their irreducible parts."""
