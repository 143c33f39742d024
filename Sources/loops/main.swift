import Loops
print("loops")
