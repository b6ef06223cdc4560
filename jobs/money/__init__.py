"""Money: prices and costs (`pricing`), the plan before sending (`plans`), and spend, budgets and
approval (`spend`).
"""
