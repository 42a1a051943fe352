print("hello from the small scenario")
