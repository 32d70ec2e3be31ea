from alexlab.cli import train

if __name__ == "__main__":
    train()
