package bsm

// tableLookup finds, in table, the line that starts with the decimal
// number n followed by a tab, and returns the rest of that line. table
// holds such lines sorted by number, separated by newlines, without a
// leading or trailing newline. It binary-searches the text directly, so
// the name tables need no package-level variables.
func tableLookup(table string, n uint64) (string, bool) {
	lo, hi := 0, len(table) // both on line starts (or the end)
	for lo < hi {
		mid := lo + (hi-lo)/2
		start := mid
		for start > lo && table[start-1] != '\n' {
			start--
		}
		end := start
		for end < len(table) && table[end] != '\n' {
			end++
		}
		num, rest := lineNumber(table[start:end])
		switch {
		case num == n:
			return rest, true
		case num < n:
			lo = end + 1
		default:
			hi = start
		}
	}
	return "", false
}

// lineNumber parses the decimal number that starts line and returns it
// and what follows the tab after it.
func lineNumber(line string) (uint64, string) {
	var num uint64
	i := 0
	for ; i < len(line) && line[i] >= '0' && line[i] <= '9'; i++ {
		num = num*10 + uint64(line[i]-'0')
	}
	if i < len(line) {
		i++ // the tab
	}
	return num, line[i:]
}
