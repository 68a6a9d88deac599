/*
 * The one exit-code table of the dd toolkit (SPEC.md, dd(7) EXIT STATUS).
 * Every program exits with one of these; nothing else picks numbers.
 */
#ifndef DD_EXITCODES_H
#define DD_EXITCODES_H

enum dd_exit {
	DD_EXIT_OK = 0,		/* everything read was accepted */
	DD_EXIT_REJECTED = 1,	/* finished, but some input was rejected */
	DD_EXIT_USAGE = 2,	/* bad option or argument; nothing was read */
	DD_EXIT_STRICT = 3,	/* stopped at bad input (--strict) */
	DD_EXIT_IO = 4,		/* I/O or store failure */
	DD_EXIT_BUSY = 5,	/* another process holds the lock */
};

#endif
