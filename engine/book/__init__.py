"""The trigger book: every live trigger, matched exactly against each tick, with no I/O.

Four modules, each importing only those below it. None imports the database, and only the actor,
which owns the book inside the engine, imports trio:

- ``actor`` -- ``run_book``: feeds ticks and commands to the book, sends its fires (Trio);
- ``book`` -- ``TriggerBook``: symbols, sides, the id index and the order of fires;
- ``entries`` -- one packed int per trigger and the sorted list that pops a whole end;
- ``codec`` -- targets as exact scaled integer keys; tick prices as floor and ceiling keys.
"""
