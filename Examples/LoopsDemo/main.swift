import Loops
print("demo")
