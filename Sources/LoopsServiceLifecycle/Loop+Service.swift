import Loops
